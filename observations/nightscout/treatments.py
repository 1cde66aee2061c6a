"""Nightscout treatments (REST API v1 JSON) -> the RawTreatments every treatment import validates.

One parser for both directions: what Loop, AndroidAPS and xDrip+ POST to /ns/api/v1/treatments,
and what a person's own Nightscout site answers on /api/v1/treatments.json. Treatments are
classified by the fields present, not by `eventType` alone (xDrip+ sends "<none>" with insulin
and carbs together; AndroidAPS calls every non-SMB bolus a "Meal Bolus"). Field sets, from the
clients' public source (AndroidAPS plugins/sync/nsclient/extensions, Loop's NightscoutKit as
cgm-remote-monitor's tests/fixtures/nightscoutkit-treatments.js records it):

- insulin (U): a bolus. `isSMB` / `type` "SMB" (AndroidAPS) or `automatic` (Loop) = automatic
  micro bolus; `type` "PRIMING" fills the cannula and is skipped (not insulin on board); Loop's
  `type` square/dual with a `duration` (min) is an extended bolus; "Correction Bolus" without
  automation = correction; "Meal Bolus", "Snack Bolus", "Bolus Wizard" with carbs = meal.
  Insulin kind from Loop's `insulinType` or xDrip+'s `insulinInjections` (unknown names: none).
- carbs (g): `absorptionTime` (min, Loop); AndroidAPS' extended carbs `duration` comes in
  milliseconds (CarbsExtension puts its Long as it is), Nightscout's careportal in minutes:
  values above 1,440 are read as milliseconds.
- "Temp Basal": `durationInMilliseconds` first, else `duration` (min); `absolute`, else `rate`
  (U/h; AndroidAPS sends both). A percentage alone is skipped (glucast keeps no basal profile to
  resolve it). Duration 0 cancels the running temporary basal (it is shortened to end then).
- "Combo Bolus": `insulin` now, the extended part `enteredinsulin` x `splitExt` % over
  `duration` (AndroidAPS: splitNow 0, splitExt 100, enteredinsulin = the extended amount).
- `isValid: false`: the app withdrew the treatment; glucast withdraws what it stored for it.

Everything else (Temporary Target, Note, Announcement, Site Change, Sensor Start, Profile
Switch, Exercise, BG Check, Temporary Override, ...) is skipped with its reason, never silently.

Identifiers, for idempotent re-sends: `identifier`, `_id`, Loop's `syncIdentifier`, xDrip+'s
`uuid`, the pump's pumpType/pumpSerial/pumpId, else eventType@created_at (Nightscout's own
fallback). One document can give several rows (insulin and carbs), so each row's identifier is
`<document id>/<row kind>` (`row_identifiers` lists them, e.g. for a withdrawal).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from observations.nightscout.entries import documents_in, epoch_ms_instant
from observations.treatments import codes
from observations.treatments.validation import RawTreatment
from observations.validation import ImportRejected, RowError, ascii_digits, finite_number, load_json

MINUTES_PER_DAY = 1440
ROW_KINDS = ("bolus", "bolus-extended", "carbs", "temp_basal")

SKIP_REASONS = {
    "Temporary Target": "temporary targets: glucast forecasts from recorded insulin and carbohydrates, not from targets",
    "Temporary Override": "Loop overrides: glucast forecasts from recorded insulin and carbohydrates, not from targets",
    "Note": "notes: free text is not stored",
    "Announcement": "announcements: free text is not stored",
    "Question": "questions: free text is not stored",
    "Site Change": "site changes (device events, no insulin or carbohydrates)",
    "Insulin Change": "insulin cartridge changes (device events)",
    "Pump Battery Change": "pump battery changes (device events)",
    "Sensor Start": "sensor starts (device events)",
    "Sensor Change": "sensor changes (device events)",
    "Sensor Stop": "sensor stops (device events)",
    "Profile Switch": "profile switches: glucast keeps no basal profile; the basal rates actually set are stored",
    "Effective Profile Switch": "profile switches: glucast keeps no basal profile; the basal rates actually set are stored",
    "Exercise": "exercise notes without steps (steps and heart rate come from files, FHIR or the API)",
    "BG Check": "meter checks sent as treatments: send meter readings as entries",
    "OpenAPS Offline": "loop-offline events",
    "Suspend Pump": "pump suspensions without a rate (temporary basals of 0 U/h are stored)",
    "Resume Pump": "pump resumptions",
    "Running Mode": "loop running-mode changes",
    "APS Offline": "loop-offline events",
    "D.A.D. Alert": "alerts",
}
NO_AMOUNT = "no insulin or carbohydrate amount in it"
PRIMING = "priming boluses fill the cannula: no insulin on board"
PERCENT_ONLY = "a temporary basal given only as a percentage: glucast keeps no basal profile to resolve it"
ZERO_COMBO = "a combo bolus without an extended part or duration"

# The validation's field names, as a Nightscout treatment names them (per row kind).
FIELD_NAMES = {
    "bolus": {"time": "created_at", "amount": "insulin", "duration_min": "duration", "insulin_kind": "insulinType"},
    "bolus-extended": {"time": "created_at", "amount": "enteredinsulin", "duration_min": "duration"},
    "carbs": {"time": "created_at", "amount": "carbs", "duration_min": "duration", "absorption_min": "absorptionTime"},
    "temp_basal": {"time": "created_at", "amount": "absolute", "duration_min": "duration"},
}
# Fields a sync partner needs back (kept in client_fields, scalars only).
CLIENT_FIELDS = ("eventType", "enteredBy", "pumpId", "pumpType", "pumpSerial", "endId", "app", "utcOffset", "type")


@dataclass
class ParsedTreatments:
    raws: list[RawTreatment] = field(default_factory=list)  # row = index + 1 in this list
    origins: list[tuple[int, str]] = field(default_factory=list)  # per raw: (document position, row kind)
    skipped: Counter = field(default_factory=Counter)
    skipped_at: dict[int, str] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    cancels: list[tuple[int, object]] = field(default_factory=list)  # (position, time) temp basal ends
    withdrawn: dict[int, str] = field(default_factory=dict)  # position -> document id
    n_items: int = 0

    def skip(self, position: int, reason: str) -> None:
        self.skipped[reason] += 1
        self.skipped_at[position] = reason

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def add(self, position: int, row_kind: str, raw: RawTreatment) -> None:
        raw.row = len(self.raws) + 1
        self.raws.append(raw)
        self.origins.append((position, row_kind))

    def kinds_at(self, position: int) -> list[str]:
        return [kind for (pos, kind) in self.origins if pos == position]


def _number(value) -> float | None:
    """A finite JSON number or numeric text; None when absent; ValueError when not a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{str(value)[:20]}… is not a finite number") from None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{value[:20]!r} is not a number") from None
    else:
        raise ValueError(f"{str(value)[:20]!r} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{value} is not a finite number")
    return number


def treatment_time(doc: dict, position: int, errors: list[RowError]):
    """The treatment's instant: `date` / `mills` (epoch ms), then `timestamp` (ms or ISO), then
    `created_at` (ISO); an ISO text is returned as it is (validation reads it)."""
    for name in ("date", "mills", "timestamp"):
        raw = doc.get(name)
        if raw is None or isinstance(raw, str) and not ascii_digits(raw.strip()):
            continue  # absent, or an ISO `timestamp` (read below)
        return epoch_ms_instant(raw, name, position, errors)
    for name in ("timestamp", "created_at"):
        value = doc.get(name)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            return text[:-1] + "+00:00" if text.endswith("Z") else text
    errors.append(RowError(position, "created_at", "missing: send created_at (ISO 8601) or date (epoch ms)"))
    return None


def document_identifier(doc: dict, event_type: str, moment) -> str:
    """The document's sync identity (see the module doc)."""
    for name in ("identifier", "_id", "syncIdentifier", "uuid"):
        value = doc.get(name)
        if isinstance(value, dict):  # mongoexport's {"$oid": ...}
            value = value.get("$oid")
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:100]
    if doc.get("pumpId") not in (None, "") and doc.get("pumpSerial") not in (None, ""):
        return f"pump:{doc.get('pumpType') or ''}:{doc['pumpSerial']}:{doc['pumpId']}"[:100]
    shown = moment.isoformat() if isinstance(moment, datetime) else str(moment)
    return f"{event_type or '<none>'}@{shown}"[:100]


def row_identifiers(document_id: str) -> list[str]:
    """Every identifier a document's rows may have been stored under."""
    return [f"{document_id}/{kind}" for kind in ROW_KINDS]


def _insulin_kind(doc: dict) -> str | None:
    names = []
    if isinstance(doc.get("insulinType"), str):
        names.append(doc["insulinType"])
    injections = doc.get("insulinInjections")
    if isinstance(injections, str):  # xDrip+ sends a JSON text
        try:  # bounded like every body: 100,000 nested brackets were a RecursionError, a 500
            injections = load_json(injections)
        except ValueError:
            injections = None
    if isinstance(injections, list):
        names += [i.get("insulin") for i in injections if isinstance(i, dict) and isinstance(i.get("insulin"), str)]
    for name in names:
        kind = codes.INSULIN_KIND_ALIASES.get(name.strip().lower())
        if kind:
            return kind
    return None


def _client_fields(doc: dict) -> dict:
    kept = {}
    for name in CLIENT_FIELDS:
        value = doc.get(name)
        if isinstance(value, str):
            kept[name] = value[:128]
        elif finite_number(value) and abs(value) < 2**53:
            kept[name] = value
    return kept


def _minutes_from(doc: dict, position: int, errors: list[RowError], *, carbs: bool = False) -> float | None:
    try:
        ms = _number(doc.get("durationInMilliseconds"))
        if ms is not None:
            return ms / 60_000.0
        minutes = _number(doc.get("duration"))
    except ValueError as exc:
        errors.append(RowError(position, "duration", str(exc)))
        return None
    if carbs and minutes is not None and minutes > MINUTES_PER_DAY:
        return minutes / 60_000.0  # AndroidAPS' extended carbs: milliseconds
    return minutes


def parse_treatments(document: object, *, max_items: int | None = None) -> ParsedTreatments:
    """One treatment object or a list -> raw treatments to validate, skipped ones with reasons,
    cancelled temporary basals, withdrawn documents, and shape errors. Raises ImportRejected
    only for a body that is not treatments at all."""
    items = documents_in(document, noun="treatment", plural="treatments", max_items=max_items)
    parsed = ParsedTreatments(n_items=len(items))
    for position, doc in enumerate(items, start=1):
        if not isinstance(doc, dict):
            parsed.errors.append(RowError(position, "treatment", "is not a JSON object"))
            continue
        _parse_one(parsed, position, doc)
    return parsed


def _parse_one(parsed: ParsedTreatments, position: int, doc: dict) -> None:
    errors: list[RowError] = []
    event_type = doc.get("eventType")
    if event_type is not None and not isinstance(event_type, str):
        parsed.errors.append(RowError(position, "eventType", "must be text"))
        return
    event_type = (event_type or "").strip()
    moment = treatment_time(doc, position, errors)
    values = {}
    for name in ("insulin", "carbs", "absolute", "rate", "percent", "enteredinsulin", "splitExt", "relative", "absorptionTime"):
        try:
            values[name] = _number(doc.get(name))
        except ValueError as exc:
            errors.append(RowError(position, name, str(exc)))
    if errors:
        parsed.errors.extend(errors)
        return
    base = document_identifier(doc, event_type, moment)
    if doc.get("isValid") is False:
        parsed.withdrawn[position] = base
        return
    common = {"time": moment, "device": doc.get("device") if isinstance(doc.get("device"), str) else (doc.get("enteredBy") if isinstance(doc.get("enteredBy"), str) else ""),
              "client_fields": _client_fields(doc)}
    common["device"] = (common["device"] or "")[:128]

    if event_type == "Temp Basal":
        minutes = _minutes_from(doc, position, parsed.errors)
        if minutes is None and doc.get("duration") is None and doc.get("durationInMilliseconds") is None:
            parsed.errors.append(RowError(position, "duration", "missing: a temporary basal needs its duration (minutes)"))
            return
        if minutes == 0:
            parsed.cancels.append((position, moment))
            return
        rate = values["absolute"] if values["absolute"] is not None else values["rate"]
        if rate is None:
            parsed.skip(position, PERCENT_ONLY if values["percent"] is not None else "a temporary basal without a rate")
            return
        parsed.add(position, "temp_basal", RawTreatment(
            row=0, kind=codes.TEMP_BASAL, amount=rate, duration_min=minutes,
            insulin_kind=_insulin_kind(doc), source_identifier=f"{base}/temp_basal", **common))
        return

    stored_any = False
    insulin = values["insulin"]
    bolus_type = doc.get("type") if isinstance(doc.get("type"), str) else ""
    if event_type == "Combo Bolus":
        minutes = _minutes_from(doc, position, parsed.errors)
        total = values["enteredinsulin"]
        if total is not None and values["splitExt"] is not None:
            extended = total * values["splitExt"] / 100.0
        elif total is not None:
            extended = total - (insulin or 0.0)
        elif values["relative"] is not None and minutes:
            extended = values["relative"] * minutes / 60.0
        else:
            extended = None
        if extended and minutes:
            parsed.add(position, "bolus-extended", RawTreatment(
                row=0, kind=codes.BOLUS, amount=extended, duration_min=minutes, bolus_type=codes.EXTENDED,
                insulin_kind=_insulin_kind(doc), source_identifier=f"{base}/bolus-extended", **common))
            stored_any = True
        elif not insulin:
            parsed.skip(position, ZERO_COMBO)
            return
    if insulin:
        if bolus_type.upper() == "PRIMING":
            parsed.skip(position, PRIMING)
            return
        subtype = None
        duration = None
        if doc.get("isSMB") is True or bolus_type.upper() == "SMB" or doc.get("automatic") is True:
            subtype = codes.SMB
        elif bolus_type.lower() in ("square", "dual") and event_type != "Combo Bolus":
            duration = _minutes_from(doc, position, parsed.errors)
            subtype = codes.EXTENDED if duration else None
        elif event_type == "Correction Bolus":
            subtype = codes.CORRECTION
        elif event_type in ("Meal Bolus", "Snack Bolus", "Bolus Wizard") and values["carbs"]:
            subtype = codes.MEAL
        parsed.add(position, "bolus", RawTreatment(
            row=0, kind=codes.BOLUS, amount=insulin, duration_min=duration or None, bolus_type=subtype,
            insulin_kind=_insulin_kind(doc), source_identifier=f"{base}/bolus", **common))
        stored_any = True
    if values["carbs"]:
        duration = _minutes_from(doc, position, parsed.errors, carbs=True) if not insulin else None
        parsed.add(position, "carbs", RawTreatment(
            row=0, kind=codes.CARBS, amount=values["carbs"], duration_min=duration or None,
            absorption_min=values["absorptionTime"] or None, source_identifier=f"{base}/carbs", **common))
        stored_any = True
    if not stored_any:
        reason = SKIP_REASONS.get(event_type)
        if reason is None:
            reason = NO_AMOUNT if event_type in ("", "<none>", "Meal Bolus", "Snack Bolus", "Correction Bolus",
                                                 "Carb Correction", "Bolus Wizard", "Carbs", "Bolus") \
                else f"Nightscout {event_type[:40]} treatments: glucast records insulin, carbohydrates and basal rates"
        parsed.skip(position, reason)


def remap_errors(parsed: ParsedTreatments, errors: list[RowError]) -> list[RowError]:
    """Validation errors (row = index in parsed.raws) as Nightscout names them, by position."""
    mapped = []
    for error in errors:
        if error.row == 0:
            mapped.append(error)
            continue
        position, row_kind = parsed.origins[error.row - 1]
        mapped.append(RowError(position, FIELD_NAMES[row_kind].get(error.field, error.field), error.reason))
    return mapped
