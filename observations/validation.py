"""The one validation path for every reading that enters glucast (REST, FHIR, files, demo).

Parsers turn their source into `RawReading`s (source row number + the raw time/value/unit as
found); `validate_readings` turns those into `Reading`s ready to store, or raises
`ImportRejected` listing every bad row (row, field, reason). A batch with any bad row is
rejected whole, so callers never store half a file.

No database: the rules can be tested and reused without one. The plausibility limits (how early
and how far ahead a reading may be, how many rows one input may bring, how deep JSON may nest)
are settings (GLUCAST_READINGS_EARLIEST, GLUCAST_READINGS_MAX_FUTURE_MIN, GLUCAST_IMPORT_MAX_ROWS,
GLUCAST_MAX_JSON_DEPTH), read here so every way in shares them: REST, files, FHIR, forecast
`history`/`as_of` and query filters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

from django.conf import settings

from observations.codes import GLUCOSE_CODES, KIND_BLOOD, KIND_CGM, GlucoseCode, default_code
from observations.units import MG_DL, MMOL_L, mgdl_to_mmoll, to_mgdl

# Accepted physiological range, in the unit the value came in. Outside it a value is a data
# error (a wrong unit, a typo), not a reading.
VALID_RANGE = {MG_DL: (20.0, 600.0), MMOL_L: (1.1, 33.3)}
# CGM receivers show "Low"/"High" outside what the sensor can measure; we store those limits
# with at_sensor_limit=True so models and statistics can treat them as censored values.
SENSOR_LOW_MG_DL = 40.0
SENSOR_HIGH_MG_DL = 400.0
# Text fields (device, identifiers, file names) may not hold control characters: PostgreSQL
# refuses NUL in text, and the others only ever come from a broken or hostile source.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# JSON's \uXXXX escapes can name half of a UTF-16 pair alone ("\ud800"): Python decodes it to a
# str that no UTF-8 can encode, so PostgreSQL, jsonb and every response renderer fail on it (a
# 500). A complete pair decodes to one character, so any surrogate left in decoded text is lone.
_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# An error list longer than this helps nobody; the rest are counted.
MAX_REPORTED_ERRORS = 100

LIMIT_LOW = "low"
LIMIT_HIGH = "high"
_LIMIT_WORDS = {"low": LIMIT_LOW, "lo": LIMIT_LOW, "high": LIMIT_HIGH, "hi": LIMIT_HIGH}

_UNIT_ALIASES = {
    "mg/dl": MG_DL,
    "mgdl": MG_DL,
    "mg_dl": MG_DL,
    "mg/100ml": MG_DL,
    "mmol/l": MMOL_L,
    "mmoll": MMOL_L,
    "mmol_l": MMOL_L,
    "mmol": MMOL_L,
}


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based line number in a CSV file, 1-based position in a JSON list/Bundle
    field: str
    reason: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "reason": self.reason}


class ImportRejected(Exception):
    """The batch is refused: nothing was saved. `errors` lists what is wrong, row by row."""

    def __init__(self, errors: Sequence[RowError], message: str | None = None):
        self.errors = list(errors)
        if message is None:
            n_rows = len({e.row for e in self.errors})
            message = (
                f"{n_rows} row{'s' if n_rows != 1 else ''} invalid; nothing was saved."
                if self.errors
                else "Invalid input; nothing was saved."
            )
        self.message = message
        super().__init__(message)

    @classmethod
    def file_error(cls, reason: str, field: str = "file") -> ImportRejected:
        """A problem with the input as a whole (row 0), not with one row."""
        return cls([RowError(0, field, reason)], message=reason)

    def with_field_names(self, names: dict[str, str]) -> ImportRejected:
        """The same rejection with fields named as the caller's input names them (e.g. the
        REST body's effective_at, a FHIR Observation's effectiveDateTime, for "time")."""
        errors = [RowError(e.row, names.get(e.field, e.field), e.reason) for e in self.errors]
        return ImportRejected(errors, message=self.message)

    def as_payload(self, limit: int = MAX_REPORTED_ERRORS) -> dict:
        shown = self.errors[:limit]
        return {
            "detail": self.message,
            "error_count": len(self.errors),
            "errors": [e.as_dict() for e in shown],
            "more_errors": max(0, len(self.errors) - len(shown)),
        }


@dataclass(slots=True)
class RawReading:
    """One reading as a source states it, before any checks."""

    row: int
    time: object  # str (ISO 8601, naive or with offset) or datetime (naive or aware)
    value: object  # number, numeric string, or "Low"/"High"
    unit: object = MG_DL
    code: object = None  # LOINC code; None = derived from kind and unit
    kind: str = KIND_CGM  # used only when code is None
    device: str = ""
    source_identifier: str = ""
    limit: str | None = None  # the source flagged the value as the sensor's Low/High limit


@dataclass(frozen=True, slots=True)
class Reading:
    """A checked reading, ready to store."""

    effective_at: datetime  # aware, UTC
    value_mg_dl: float
    original_value: float
    original_unit: str  # UCUM
    code: str
    display: str
    kind: str
    at_sensor_limit: bool
    device: str
    source_identifier: str


def normalize_unit(unit: object) -> str | None:
    """The UCUM spelling of a glucose unit, or None if it is not one we know."""
    if not isinstance(unit, str):
        return None
    return _UNIT_ALIASES.get(unit.strip().lower().replace(" ", ""))


# --- Plausibility: one rule for every way in ---------------------------------------------------


def earliest_reading_time() -> datetime:
    """Readings before this (GLUCAST_READINGS_EARLIEST, UTC midnight) are data errors."""
    return datetime.combine(date.fromisoformat(str(settings.GLUCAST_READINGS_EARLIEST)), datetime.min.time(), tzinfo=timezone.utc)


def max_future() -> timedelta:
    """Clocks drift: a reading a few minutes "ahead" is a phone clock, more is a wrong date/zone."""
    return timedelta(minutes=settings.GLUCAST_READINGS_MAX_FUTURE_MIN)


def implausible_time(moment: datetime, *, now: datetime | None = None, future: bool = True) -> str | None:
    """Why an aware time cannot be a reading's (None when it can): before the floor, or (with
    `future`) more than GLUCAST_READINGS_MAX_FUTURE_MIN minutes ahead of `now`."""
    earliest = earliest_reading_time()
    if moment < earliest:
        return f"{moment:%Y-%m-%dT%H:%M:%SZ} is before {earliest:%Y-%m-%d}, the earliest accepted time"
    if future:
        tolerance = max_future()
        if moment > (now or datetime.now(timezone.utc)) + tolerance:
            minutes = int(tolerance.total_seconds() // 60)
            return f"{moment:%Y-%m-%dT%H:%M:%SZ} is more than {minutes} minutes in the future"
    return None


def control_characters(text: object) -> str | None:
    """Why a text field is refused for control characters (None when it has none)."""
    if isinstance(text, str) and _CONTROL_CHARACTERS.search(text):
        return "contains control characters (such as NUL); send plain text"
    return None


def ascii_digits(text: object) -> bool:
    """Whether `text` is a run of the ASCII digits 0-9, safe to give int(): str.isdigit() alone
    also takes "²", which int() refuses (a ValueError, a 500, where a 400 belongs)."""
    return isinstance(text, str) and text.isascii() and text.isdigit()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def text_problem(text: object) -> str | None:
    """Why a stored text field (device, source identifier) is refused: control characters, or
    the start of a spreadsheet formula (=, +, -, @ — CSV injection once anyone exports the
    readings to a spreadsheet); a signed number such as -12 is fine. None when it is fine."""
    reason = control_characters(text)
    if reason or not isinstance(text, str):
        return reason
    stripped = text.strip()
    if stripped[:1] in ("=", "+", "-", "@") and not _is_number(stripped):
        return f"{stripped[:20]!r} starts like a spreadsheet formula (=, +, -, @); send plain text"
    return None


def check_row_count(n: int, *, field: str = "body") -> None:
    """Refuse an input with more readings than GLUCAST_IMPORT_MAX_ROWS before any work on them."""
    limit = settings.GLUCAST_IMPORT_MAX_ROWS
    if n > limit:
        raise ImportRejected.file_error(
            f"{n} readings in one request; the limit is {limit} (split the file or the list)", field=field
        )


def json_too_deep(document: object, limit: int | None = None) -> bool:
    """Whether decoded JSON nests deeper than `limit` (GLUCAST_MAX_JSON_DEPTH); iterative, so a
    deep document cannot exhaust the stack here, and linear in its size."""
    limit = settings.GLUCAST_MAX_JSON_DEPTH if limit is None else limit
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def finite_number(value: object) -> bool:
    """Whether `value` is a JSON number (not true/false) that is finite. Every int is, and
    math.isfinite() of one beyond float's range is an OverflowError (JSON integers have no size
    limit), so ints are never given to it."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or isinstance(value, float) and math.isfinite(value)


def lone_surrogate_at(document: object) -> str | None:
    """Where decoded JSON holds text with a lone UTF-16 surrogate, as a path such as
    `entries[2].device` (`body` for the document itself), or None. Iterative and linear."""
    stack = [(document, "body")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _SURROGATES.search(node):
                return path
        elif isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and _SURROGATES.search(key):
                    return f"a field name in {path}"
                stack.append((child, key if path == "body" else f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{'' if path == 'body' else path}[{i}]") for i, child in enumerate(node))
    return None


class JSONRefused(ValueError):
    """load_json's refusal of decodable JSON; `field` names where in the document it is."""

    def __init__(self, message: str, field: str = "body"):
        super().__init__(message)
        self.field = field


def load_json(text: str | bytes, *, allow_constants: bool = False) -> object:
    """Decode JSON text safely: ValueError (with a message for people) for invalid JSON, JSON
    nested deeper than GLUCAST_MAX_JSON_DEPTH (the decoder itself would raise RecursionError on
    very deep input), the non-standard NaN/Infinity constants (unless `allow_constants`: for a
    caller whose every number check refuses them naming the field), and text holding a lone
    UTF-16 surrogate (named by its path: it could be neither stored nor answered)."""

    def refuse_constant(name):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        document = json.loads(text, parse_constant=None if allow_constants else refuse_constant)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {settings.GLUCAST_MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if json_too_deep(document):
        raise ValueError(f"JSON nested deeper than {settings.GLUCAST_MAX_JSON_DEPTH} levels")
    # In text, lone surrogates can only come from \u escapes (a UTF-8 decoder refuses encoded
    # ones), so most documents skip the walk; bytes may be UTF-16 or -32, and are walked.
    escaped = not isinstance(text, str) or _SURROGATE_ESCAPE.search(text)
    where = lone_surrogate_at(document) if escaped else None
    if where:
        raise JSONRefused(f"{where}: text with a lone UTF-16 surrogate (such as \\ud800 without its pair) "
                          "is not Unicode; send UTF-8 text", field=where)
    return document


def _as_datetime(raw: object) -> datetime:
    """A datetime (naive or aware) from ISO 8601 text or a datetime; ValueError says why not."""
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, str) and raw.strip():
        text = raw.strip()
        if _CONTROL_CHARACTERS.search(text):  # fromisoformat reads "10:00:00\x00Z" as a time
            raise ValueError("contains control characters (such as NUL); send an ISO 8601 date and time")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a recognised date and time") from None
        if len(text) <= 10:
            raise ValueError(f"{text!r} has a date but no time of day")
        return moment
    if raw is None or isinstance(raw, str):
        raise ValueError("missing")
    raise ValueError(f"{raw!r} is not a date and time")


def parse_timestamp(value: object, tz: tzinfo) -> datetime:
    """An aware UTC datetime from ISO 8601 text or a datetime; naive times are read in `tz`.

    For single values such as query parameters; batches go through validate_readings, which
    also resolves the repeated autumn hour from the order of the rows. A time before
    GLUCAST_READINGS_EARLIEST, or one that cannot be represented in UTC, is a ValueError (a
    filter bound may lie in the future).
    """
    moment = _as_datetime(value)
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{str(value)[:40]!r} lies outside the representable dates") from None
    reason = implausible_time(moment, future=False)
    if reason:
        raise ValueError(reason)
    return moment


class _LocalClock:
    """Reads naive wall-clock times in one IANA zone, DST-correctly, in source order.

    In the autumn hour that occurs twice, a naive time is ambiguous. Devices log in order, so
    when the clock steps back inside that hour we are in its second occurrence (fold=1).
    """

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self._last_ambiguous: datetime | None = None
        self._second_pass = False
        self._ambiguity: dict[tuple, bool] = {}

    def _is_ambiguous(self, naive: datetime) -> bool:
        # Zone transitions happen on quarter hours, so one answer holds for a 15-minute slot;
        # caching it keeps 100,000-row imports fast.
        slot = (naive.year, naive.month, naive.day, naive.hour, naive.minute // 15)
        known = self._ambiguity.get(slot)
        if known is None:
            known = self._ambiguity[slot] = self._check_ambiguous(naive.replace(minute=slot[4] * 15, second=0, microsecond=0))
        return known

    def _check_ambiguous(self, naive: datetime) -> bool:
        first = naive.replace(tzinfo=self.tz, fold=0)
        second = naive.replace(tzinfo=self.tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return False
        # Both folds exist (not a spring-forward gap) when each survives a round trip.
        return all(
            a.astimezone(timezone.utc).astimezone(self.tz).replace(tzinfo=None) == naive
            for a in (first, second)
        )

    def to_utc(self, naive: datetime) -> datetime:
        if not self._is_ambiguous(naive):
            self._last_ambiguous, self._second_pass = None, False
            # A time in the spring-forward gap cannot come from a clock that followed DST;
            # fold=0 reads it with the offset in force before the change.
            return naive.replace(tzinfo=self.tz, fold=0).astimezone(timezone.utc)
        if self._last_ambiguous is not None and naive < self._last_ambiguous:
            self._second_pass = True
        self._last_ambiguous = naive
        fold = 1 if self._second_pass else 0
        return naive.replace(tzinfo=self.tz, fold=fold).astimezone(timezone.utc)


LocalClock = _LocalClock  # public for the other validation paths (treatments) that read naive times


def _parse_time(raw: object, clock: _LocalClock) -> datetime:
    moment = _as_datetime(raw)
    try:
        if moment.tzinfo is None:
            return clock.to_utc(moment)
        return moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. year 1 read in a zone east of UTC
        raise ValueError(f"{str(raw)[:40]!r} lies outside the representable dates") from None


parse_time = _parse_time


def _parse_value(raw: object) -> tuple[float | None, str | None]:
    """(number, None) or (None, limit word) or raise ValueError."""
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a number")
    if isinstance(raw, int):
        try:
            return float(raw), None
        except OverflowError:  # JSON allows integers of any length
            raise ValueError(f"{str(raw)[:20]}… is not a finite number") from None
    if isinstance(raw, float):
        return raw, None
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise ValueError("missing")
        limit = _LIMIT_WORDS.get(text.lower())
        if limit:
            return None, limit
        if "," in text and "." not in text and text.count(",") == 1:
            text = text.replace(",", ".")  # decimal comma, as in European exports
        try:
            return float(text), None
        except ValueError:
            raise ValueError(f"{raw.strip()[:40]!r} is not a number") from None
    if raw is None:
        raise ValueError("missing")
    raise ValueError(f"{raw!r} is not a number")


def _resolve_code(raw: RawReading, unit: str) -> GlucoseCode:
    if raw.code in (None, ""):
        return default_code(raw.kind if raw.kind in (KIND_CGM, KIND_BLOOD) else KIND_CGM, unit)
    code = GLUCOSE_CODES.get(str(raw.code).strip())
    if code is None:
        known = ", ".join(GLUCOSE_CODES)
        raise ValueError(f"{raw.code!r} is not a glucose LOINC code we accept ({known})")
    if code.unit != unit:
        raise ValueError(f"LOINC {code.code} is measured in {code.unit}, but the unit is {unit}")
    return code


def validate_readings(
    raws: Iterable[RawReading], *, tz: tzinfo, now: datetime | None = None
) -> list[Reading]:
    """Check every raw reading; return them all as Readings or raise ImportRejected.

    Every row is checked (not just up to the first error) so one answer lists all problems.
    """
    now = now or datetime.now(timezone.utc)
    raws = list(raws)
    check_row_count(len(raws))
    clock = _LocalClock(tz)
    readings: list[Reading] = []
    errors: list[RowError] = []
    for raw in raws:
        row_errors_before = len(errors)

        unit = normalize_unit(raw.unit)
        if unit is None:
            shown = "missing" if raw.unit in (None, "") else f"{str(raw.unit)[:20]!r} is not a glucose unit"
            errors.append(RowError(raw.row, "unit", f"{shown}; use mg/dL or mmol/L"))

        try:
            effective_at = _parse_time(raw.time, clock)
        except ValueError as exc:
            errors.append(RowError(raw.row, "time", str(exc)))
            effective_at = None
        else:
            reason = implausible_time(effective_at, now=now)
            if reason:
                errors.append(RowError(raw.row, "time", reason))

        for name in ("device", "source_identifier"):
            reason = text_problem(getattr(raw, name))
            if reason:
                errors.append(RowError(raw.row, name, reason))

        number: float | None = None
        limit = raw.limit
        try:
            number, word_limit = _parse_value(raw.value)
            limit = limit or word_limit
        except ValueError as exc:
            errors.append(RowError(raw.row, "value", str(exc)))
        else:
            if number is not None and unit is not None:
                low, high = VALID_RANGE[unit]
                if math.isnan(number) or math.isinf(number):
                    errors.append(RowError(raw.row, "value", f"{number} is not a finite number"))
                elif number < 0:
                    errors.append(RowError(raw.row, "value", f"{number:g} is negative"))
                elif not low <= number <= high and limit is None:
                    errors.append(
                        RowError(
                            raw.row,
                            "value",
                            f"{number:g} {unit} is outside the accepted {low:g}-{high:g} {unit}",
                        )
                    )

        code = None
        if unit is not None:
            try:
                code = _resolve_code(raw, unit)
            except ValueError as exc:
                errors.append(RowError(raw.row, "code", str(exc)))

        if len(errors) > row_errors_before:
            continue

        if number is None:  # "Low"/"High": the device limit, in the source's unit too
            value_mg_dl = SENSOR_LOW_MG_DL if limit == LIMIT_LOW else SENSOR_HIGH_MG_DL
            original = value_mg_dl if unit == MG_DL else round(mgdl_to_mmoll(value_mg_dl), 1)
        else:
            original = number
            value_mg_dl = round(to_mgdl(number, unit), 2)  # float noise off: 6.2*18 = 111.60000000000001
        readings.append(
            Reading(
                effective_at=effective_at,
                value_mg_dl=value_mg_dl,
                original_value=original,
                original_unit=unit,
                code=code.code,
                display=code.display,
                kind=code.kind,
                at_sensor_limit=limit is not None,
                device=(raw.device or "")[:128],
                source_identifier=(str(raw.source_identifier or ""))[:128],
            )
        )
    if errors:
        raise ImportRejected(errors)
    return readings
