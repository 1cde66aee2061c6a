"""Storing and serving Nightscout entries for one person; used by the /ns/ API and the pull.

    store_entries(person, document, *, channel, now=None) -> dict   validate all, store new ones
    entries_for(person, *, count, bounds) -> list[dict]             newest first, Nightscout shape
    store_treatments_document(person, document, *, channel) -> dict  insulin, carbs, temp basals
    treatments_for(person, *, count, bounds) -> list[dict]          newest first, Nightscout shape

Entries go through the one validation path and the idempotent bulk insert of every import
(observations.services.import_readings): re-sending the last hour adds nothing. Each channel
gathers a day's readings (the person's local day) in one import on the data page, so deleting
"live upload 2026-11-29" removes that day's live readings and nothing else.
"""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

from django.db import transaction
from django.utils import timezone

from observations.models import ImportBatch, Observation, Treatment
from observations.nightscout.entries import check_entries, parse_entries
from observations.nightscout.treatments import parse_treatments, remap_errors, row_identifiers
from observations.services import import_readings, schedule_window_refresh
from observations.treatments.services import end_running_temp_basal, store_checked_treatments, withdraw_treatments
from observations.treatments.validation import validate_treatments
from observations.validation import ImportRejected, RowError, ascii_digits, parse_timestamp

UPLOAD = "nightscout-upload"
PULL = "nightscout-pull"
V3_UPLOAD = "nightscout-v3"  # Nightscout API v3 (AndroidAPS' NSClientV3)
CHANNEL_LABELS = {UPLOAD: "live upload", PULL: "Nightscout pull", V3_UPLOAD: "API v3 upload"}


def _day_batch(person, channel: str, now: datetime) -> ImportBatch:
    filename = f"{CHANNEL_LABELS[channel]} {now.astimezone(person.tz):%Y-%m-%d}"
    batch = ImportBatch.objects.for_person(person).filter(source=channel, filename=filename).order_by("pk").first()
    return batch or ImportBatch.objects.create(person=person, source=channel, filename=filename)


def store_entries(person, document, *, channel: str, max_entries: int | None = None, now=None) -> dict:
    """Validate every entry and store the new readings; raises ImportRejected (nothing stored).

    Returns the summary the API answers: entries received, readings created, duplicates,
    skipped entries with their reasons, and the span of the readings sent."""
    now = now or timezone.now()
    parsed = parse_entries(document, max_entries=max_entries)
    readings = check_entries(parsed, tz=person.tz, now=now)
    created = duplicates = 0
    span = None
    if readings:
        batch = _day_batch(person, channel, now)
        before = (batch.n_created, batch.n_duplicates)
        batch = import_readings(person, readings, source=channel, batch=batch, skipped=parsed.n_skipped)
        created, duplicates = batch.n_created - before[0], batch.n_duplicates - before[1]
        times = [r.effective_at for r in readings]
        span = (min(times), max(times))
        if created:
            schedule_window_refresh(person, span)
    return {
        "received": parsed.n_entries,
        "created": created,
        "duplicates": duplicates,
        "skipped": parsed.n_skipped,
        "skipped_reasons": dict(parsed.skipped),
        "skipped_at": parsed.skipped_at,
        "newest": span[1] if span else None,
    }


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def as_entry(observation: Observation) -> dict:
    """A stored reading as a Nightscout sgv entry (24-hex `_id` like Nightscout's ObjectIds)."""
    moment = observation.effective_at.astimezone(dt_timezone.utc)
    return {
        "_id": f"{observation.pk:024x}",
        "type": "sgv",
        "sgv": round(observation.value_mg_dl),
        "date": _epoch_ms(moment),
        "dateString": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "device": observation.device or "glucast",
    }


def entries_for(person, *, count: int, bounds: dict[str, datetime]) -> list[dict]:
    """The person's sensor readings, newest first, at most `count`, within `bounds`
    ({"gt"|"gte"|"lt"|"lte": instant})."""
    lookups = {f"effective_at__{op}": moment for op, moment in bounds.items()}
    rows = (
        Observation.objects.for_person(person)
        .usable()
        .filter(kind=Observation.Kind.CGM, **lookups)
        .order_by("-effective_at")[:count]
    )
    return [as_entry(row) for row in rows]


def from_epoch_ms(value: str) -> datetime:
    """An instant from a find[date][...] value (epoch ms, or an ISO date-time); ValueError says why."""
    text = value.strip()
    if ascii_digits(text.removeprefix("-")) and len(text) <= 16:
        return datetime.fromtimestamp(int(text) / 1000.0, tz=dt_timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is neither epoch milliseconds nor an ISO date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_timezone.utc)
    return moment


# --- Treatments ---------------------------------------------------------------------------------


def store_treatments_document(person, document, *, channel: str, max_items: int | None = None, now=None) -> dict:
    """Validate every Nightscout treatment and store the insulin, carbohydrates and temporary
    basals among them in the day's import of the channel, with what was skipped and why; end
    cancelled temporary basals and withdraw what the app withdrew, all in one transaction.
    Raises ImportRejected naming each bad treatment (by position) and field; nothing is stored then.

    Returns the summary the API answers: received, created, duplicates, skipped (with reasons and
    positions), withdrawn, cancelled, the kinds stored per position, and the newest time sent."""
    now = now or timezone.now()
    parsed = parse_treatments(document, max_items=max_items)
    errors = list(parsed.errors)
    checked = None
    try:
        checked = validate_treatments(parsed.raws, tz=person.tz, now=now)
    except ImportRejected as exc:
        errors += remap_errors(parsed, exc.errors)
    cancel_times = []
    for position, moment in parsed.cancels:
        try:
            cancel_times.append(parse_timestamp(moment, person.tz))
        except ValueError as exc:
            errors.append(RowError(position, "created_at", str(exc)))
    if errors:
        errors.sort(key=lambda e: e.row)
        n_rows = len({e.row for e in errors})
        raise ImportRejected(errors, message=f"{n_rows} treatment{'s' if n_rows != 1 else ''} invalid; nothing was saved.")
    created = duplicates = updated = withdrawn = cancelled = 0
    newest = None
    with transaction.atomic():
        if checked.treatments or checked.repeated or parsed.n_skipped:
            stored = store_checked_treatments(
                person=person, checked=checked.treatments, source=channel, batch=_day_batch(person, channel, now),
                skipped=parsed.n_skipped, repeated=checked.repeated, replace=True,
            )
            created, duplicates, updated = stored.created, stored.duplicates, stored.updated
            newest = stored.span[1] if stored.span else None
        for moment in cancel_times:
            cancelled += end_running_temp_basal(person=person, at=moment)
        for document_id in parsed.withdrawn.values():
            withdrawn += withdraw_treatments(person=person, identifiers=row_identifiers(document_id))
    return {
        "received": parsed.n_items,
        "created": created,
        "duplicates": duplicates,
        "updated": updated,
        "skipped": parsed.n_skipped,
        "skipped_reasons": dict(parsed.skipped),
        "skipped_at": parsed.skipped_at,
        "withdrawn_at": set(parsed.withdrawn),
        "withdrawn": withdrawn,
        "cancelled_at": {position for position, _ in parsed.cancels},
        "cancelled": cancelled,
        "kinds_at": {position: parsed.kinds_at(position) for position, _ in parsed.origins},
        "newest": newest,
    }


def as_treatment(treatment: Treatment) -> dict:
    """A stored treatment as a Nightscout v1 treatment (what Loop, xDrip+ and AndroidAPS read)."""
    moment = treatment.effective_at.astimezone(dt_timezone.utc)
    document = {
        "_id": f"{treatment.pk:024x}",
        "created_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "date": _epoch_ms(moment),
        "mills": _epoch_ms(moment),
        "enteredBy": "glucast",
        "identifier": treatment.source_identifier,
    }
    fields = treatment.client_fields or {}
    for name in ("pumpId", "pumpType", "pumpSerial"):
        if name in fields:
            document[name] = fields[name]
    minutes = None if treatment.duration is None else treatment.duration.total_seconds() / 60.0
    if treatment.kind == Treatment.Kind.BOLUS:
        if treatment.bolus_type == Treatment.BolusType.EXTENDED:
            document.update(eventType="Combo Bolus", enteredinsulin=treatment.amount, splitNow=0, splitExt=100,
                            duration=minutes, relative=treatment.amount / (minutes / 60.0) if minutes else None)
        else:
            document.update(
                eventType="Correction Bolus" if treatment.bolus_type in ("correction", "smb") else "Meal Bolus",
                insulin=treatment.amount, isSMB=treatment.bolus_type == "smb",
            )
    elif treatment.kind == Treatment.Kind.CARBS:
        document.update(eventType="Carb Correction", carbs=treatment.amount)
        if treatment.absorption is not None:
            document["absorptionTime"] = treatment.absorption.total_seconds() / 60.0
    elif treatment.kind == Treatment.Kind.TEMP_BASAL:
        document.update(eventType="Temp Basal", absolute=treatment.amount, rate=treatment.amount,
                        duration=minutes, durationInMilliseconds=int(treatment.duration.total_seconds() * 1000))
    if treatment.insulin_kind:
        document["insulinType"] = treatment.insulin_kind
    return document


# Kinds a Nightscout client reads back as treatments (steps and heart rate are not Nightscout's).
NIGHTSCOUT_KINDS = (Treatment.Kind.BOLUS, Treatment.Kind.CARBS, Treatment.Kind.TEMP_BASAL)


def treatments_for(person, *, count: int, bounds: dict[str, datetime]) -> list[dict]:
    """The person's insulin, carbs and temporary basals, newest first, at most `count`, within
    `bounds` ({"gt"|"gte"|"lt"|"lte": instant} on created_at)."""
    lookups = {f"effective_at__{op}": moment for op, moment in bounds.items()}
    rows = (
        Treatment.objects.for_person(person).usable()
        .filter(kind__in=NIGHTSCOUT_KINDS, **lookups)
        .order_by("-effective_at", "-pk")[:count]
    )
    return [as_treatment(row) for row in rows]
