"""The one validation path for every treatment that enters glucast (REST, FHIR, CSV, Nightscout).

Like readings (observations.validation, whose time rules, text rules and error type it shares):
parsers turn their source into `RawTreatment`s (source row + the raw values as found);
`validate_treatments` turns them into `CheckedTreatment`s ready to store, or raises
`ImportRejected` listing every bad row and field. A batch with any bad row is refused whole.

Rules (observations.treatments.codes holds the numbers):
- a known kind; the amount a finite number within the kind's range (bolus 0-100 U, basal and
  temporary basal 0-35 U/h, carbs 0-500 g, steps 0-100,000 and at most 300 a minute of the
  interval, heart rate 20-250 /min), in the kind's unit or an alias of it;
- the time as for readings: not before GLUCAST_READINGS_EARLIEST, not more than
  GLUCAST_READINGS_MAX_FUTURE_MIN ahead of now (only recorded treatments: glucast takes no
  planned insulin or meals); naive times in the person's zone;
- a duration where the kind has one (a temporary basal and a steps count must; at most 24 h);
- insulin kind only on insulin, bolus type only on a bolus, absorption only on carbs;
- one identifier per treatment in a batch: the same one twice with the same values is a
  duplicate (the first is kept), with other values a 400.

No database here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo

from django.conf import settings

from observations.treatments import codes
from observations.validation import (
    ImportRejected,
    LocalClock,
    RowError,
    implausible_time,
    parse_time,
    text_problem,
)

MAX_CLIENT_FIELDS = 16
MAX_CLIENT_TEXT = 128


@dataclass(slots=True)
class RawTreatment:
    """One treatment as a source states it, before any checks."""

    row: int
    kind: object
    time: object  # ISO 8601 text (naive = the person's zone) or a datetime
    amount: object
    unit: object = None  # None: the kind's canonical unit
    duration_min: object = None
    insulin_kind: object = None
    bolus_type: object = None
    absorption_min: object = None
    source_identifier: object = ""
    device: object = ""
    client_fields: dict = field(default_factory=dict)
    is_valid: bool = True


@dataclass(frozen=True, slots=True)
class CheckedTreatment:
    """A checked treatment, ready to store (units canonical, time aware UTC)."""

    kind: str
    effective_at: datetime
    amount: float
    unit: str
    duration: timedelta | None
    insulin_kind: str | None
    bolus_type: str | None
    absorption: timedelta | None
    source_identifier: str
    device: str
    client_fields: dict
    is_valid: bool = True

    def same_values(self, other: CheckedTreatment) -> bool:
        return self == other


def derived_identifier(kind: str, moment: datetime) -> str:
    """The identifier of a treatment whose source gives none: its kind and instant, so
    re-importing the same file adds nothing."""
    return f"{kind}@{int(moment.timestamp() * 1000)}"


def parse_number(raw: object) -> float:
    """A finite float from a JSON number or numeric text (decimal comma allowed); ValueError says why."""
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a number")
    if isinstance(raw, int):
        try:
            number = float(raw)
        except OverflowError:  # JSON integers have no size limit
            raise ValueError(f"{str(raw)[:20]}… is not a finite number") from None
    elif isinstance(raw, float):
        number = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise ValueError("missing")
        if "," in text and "." not in text and text.count(",") == 1:
            text = text.replace(",", ".")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{raw.strip()[:40]!r} is not a number") from None
    elif raw is None:
        raise ValueError("missing")
    else:
        raise ValueError(f"{str(raw)[:40]!r} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{number} is not a finite number")
    return number


def _choice(raw: object, allowed: tuple[str, ...], aliases: dict[str, str] | None = None) -> str | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ValueError(f"{str(raw)[:40]!r} is not text")
    text = raw.strip().lower()
    if text in allowed:
        return text
    if aliases and text in aliases:
        return aliases[text]
    raise ValueError(f"{raw.strip()[:40]!r} is not one of {', '.join(allowed)}")


def _minutes(raw: object, name: str, errors: list[RowError], row: int) -> timedelta | None:
    if raw in (None, ""):
        return None
    try:
        minutes = parse_number(raw)
    except ValueError as exc:
        errors.append(RowError(row, name, str(exc)))
        return None
    if minutes < 0:
        errors.append(RowError(row, name, f"{minutes:g} minutes is negative"))
        return None
    # Compared as a number first: timedelta() itself overflows (a 500) on a huge one.
    if minutes > codes.MAX_DURATION / timedelta(minutes=1):
        errors.append(RowError(row, name, f"{minutes:g} minutes is longer than 24 hours"))
        return None
    return timedelta(minutes=minutes)


def _client_fields(raw: object) -> tuple[dict, str | None]:
    if raw in (None, {}):
        return {}, None
    if not isinstance(raw, dict):
        return {}, "must be an object of plain values"
    if len(raw) > MAX_CLIENT_FIELDS:
        return {}, f"{len(raw)} fields; at most {MAX_CLIENT_FIELDS}"
    kept = {}
    for key, value in raw.items():
        if not isinstance(key, str) or len(key) > 40 or control_problem(key):
            return {}, f"{str(key)[:40]!r} is not a field name"
        if isinstance(value, str):
            if len(value) > MAX_CLIENT_TEXT or control_problem(value):
                return {}, f"{key}: text longer than {MAX_CLIENT_TEXT} characters or with control characters"
        elif isinstance(value, float) and not math.isfinite(value):
            return {}, f"{key}: {value} is not a finite number"
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
            return {}, f"{key}: number too large"
        elif value is not None and not isinstance(value, (bool, int, float)):
            return {}, f"{key}: must be text, a number, true/false or null"
        kept[key] = value
    return kept, None


def control_problem(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def check_treatment_count(n: int, *, field: str = "body") -> None:
    """Refuse more treatments than GLUCAST_IMPORT_MAX_ROWS in one input before any work on them."""
    limit = settings.GLUCAST_IMPORT_MAX_ROWS
    if n > limit:
        raise ImportRejected.file_error(
            f"{n} treatments in one request; the limit is {limit} (split the file or the list)", field=field
        )


def _check_one(raw: RawTreatment, clock: LocalClock, now: datetime, errors: list[RowError]) -> CheckedTreatment | None:
    row = raw.row
    before = len(errors)
    try:
        kind = _choice(raw.kind, codes.KINDS)
        if kind is None:
            raise ValueError(f"missing; one of {', '.join(codes.KINDS)}")
    except ValueError as exc:
        errors.append(RowError(row, "kind", str(exc)))
        return None
    spec = codes.TREATMENT_KINDS[kind]

    effective_at = None
    try:
        effective_at = parse_time(raw.time, clock)
    except ValueError as exc:
        errors.append(RowError(row, "time", str(exc)))
    else:
        reason = implausible_time(effective_at, now=now)
        if reason:
            errors.append(RowError(row, "time", reason + " (only recorded treatments are accepted)"))

    unit = spec.unit
    if raw.unit not in (None, ""):
        given = codes.UNIT_ALIASES.get(str(raw.unit).strip().lower().replace(" ", "")) if isinstance(raw.unit, str) else None
        if given != spec.unit:
            errors.append(RowError(row, "unit", f"{str(raw.unit)[:20]!r} is not a unit of {kind}; use {spec.unit}"))

    amount = None
    try:
        amount = parse_number(raw.amount)
    except ValueError as exc:
        errors.append(RowError(row, "amount", str(exc)))
    else:
        if amount < 0:
            errors.append(RowError(row, "amount", f"{amount:g} is negative"))
        elif not spec.low <= amount <= spec.high:
            errors.append(RowError(row, "amount", f"{amount:g} {unit} is outside the accepted {spec.low:g}-{spec.high:g} {unit} for {kind}"))

    duration_errors = len(errors)
    duration = _minutes(raw.duration_min, "duration_min", errors, row)
    if duration is not None and duration.total_seconds() == 0:
        duration = None
    if spec.duration == "required" and duration is None and len(errors) == duration_errors:
        errors.append(RowError(row, "duration_min", f"missing: a {kind} needs its duration in minutes (more than 0)"))
    if kind == codes.STEPS and duration is not None and amount is not None:
        limit = codes.MAX_STEPS_PER_MINUTE * duration.total_seconds() / 60
        if amount > limit:
            errors.append(RowError(row, "amount", f"{amount:g} steps in {duration.total_seconds() / 60:g} minutes is more than {codes.MAX_STEPS_PER_MINUTE} a minute"))

    insulin_kind = bolus_type = None
    try:
        insulin_kind = _choice(raw.insulin_kind, codes.INSULIN_KINDS, codes.INSULIN_KIND_ALIASES)
        if insulin_kind and kind not in codes.INSULIN_KINDS_OF_TREATMENT:
            raise ValueError(f"only insulin has an insulin kind, not {kind}")
    except ValueError as exc:
        errors.append(RowError(row, "insulin_kind", str(exc)))
    try:
        bolus_type = _choice(raw.bolus_type, codes.BOLUS_TYPES)
        if bolus_type and kind != codes.BOLUS:
            raise ValueError(f"only a bolus has a bolus type, not {kind}")
    except ValueError as exc:
        errors.append(RowError(row, "bolus_type", str(exc)))
    absorption = _minutes(raw.absorption_min, "absorption_min", errors, row)
    if absorption is not None and kind != codes.CARBS:
        errors.append(RowError(row, "absorption_min", f"only carbs have an absorption time, not {kind}"))

    for name in ("device", "source_identifier"):
        value = getattr(raw, name)
        if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
            errors.append(RowError(row, name, "must be text"))
            continue
        reason = text_problem(str(value or ""))
        if reason:
            errors.append(RowError(row, name, reason))
    client_fields, reason = _client_fields(raw.client_fields)
    if reason:
        errors.append(RowError(row, "client_fields", reason))

    if len(errors) > before:
        return None
    identifier = str(raw.source_identifier or "").strip()[:128] or derived_identifier(kind, effective_at)
    return CheckedTreatment(
        kind=kind,
        effective_at=effective_at,
        amount=amount,
        unit=unit,
        duration=duration,
        insulin_kind=insulin_kind,
        bolus_type=bolus_type,
        absorption=absorption,
        source_identifier=identifier,
        device=str(raw.device or "")[:128],
        client_fields=client_fields,
        is_valid=bool(raw.is_valid),
    )


@dataclass(frozen=True)
class CheckedBatch:
    treatments: list[CheckedTreatment]  # one per identifier, in source order
    repeated: int  # rows repeating an earlier row of the batch exactly (counted as duplicates)


def validate_treatments(
    raws: Iterable[RawTreatment], *, tz: tzinfo, now: datetime | None = None
) -> CheckedBatch:
    """Check every raw treatment; return them all or raise ImportRejected naming each bad row
    and field. Every row is checked, so one answer lists all problems."""
    now = now or datetime.now(timezone.utc)
    raws = list(raws)
    check_treatment_count(len(raws))
    clock = LocalClock(tz)
    errors: list[RowError] = []
    first_row: dict[str, tuple[int, CheckedTreatment]] = {}
    kept: list[CheckedTreatment] = []
    repeated = 0
    for raw in raws:
        checked = _check_one(raw, clock, now, errors)
        if checked is None:
            continue
        earlier = first_row.get(checked.source_identifier)
        if earlier is None:
            first_row[checked.source_identifier] = (raw.row, checked)
            kept.append(checked)
        elif earlier[1].same_values(checked):
            repeated += 1
        else:
            derived = not str(raw.source_identifier or "").strip()
            what = (f"another {checked.kind} at the same time as row {earlier[0]}; give each its own identifier"
                    if derived else f"the identifier of row {earlier[0]}, with other values")
            errors.append(RowError(raw.row, "source_identifier", f"repeats {what}"))
    if errors:
        errors.sort(key=lambda e: e.row)
        n_rows = len({e.row for e in errors})
        raise ImportRejected(errors, message=f"{n_rows} treatment{'s' if n_rows != 1 else ''} invalid; nothing was saved.")
    return CheckedBatch(treatments=kept, repeated=repeated)
