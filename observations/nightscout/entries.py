"""Nightscout entries (REST API v1 JSON) -> the RawReadings every import validates.

One parser for both directions of the connection: what xDrip+, AndroidAPS or Loop POST to
/ns/api/v1/entries, and what a person's own Nightscout site answers on /api/v1/entries.json.
Field sets, from the uploaders' public source:

- xDrip+ (NightscoutUploader.populateV1APIBGEntry): device, date (epoch ms), dateString
  ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", local offset), sgv (int mg/dL), delta, direction, type "sgv",
  filtered, unfiltered, rssi, noise, sysTime; plus "mbg" meter and "cal" calibration entries.
- AndroidAPS (GlucoseValue.toJson, NSClient): device, date, dateString (UTC), sgv (a decimal),
  direction, type, _id; its API v3 shape (NSSgvV3) adds identifier, utcOffset, isValid, units,
  noise, filtered, unfiltered.

`sgv` is always mg/dL in Nightscout, whatever the site displays, so `units` is not read.
Only sensor readings (type "sgv") are stored from this channel; meter (mbg), calibration (cal)
and other entries are counted as skipped with the reason, as are Dexcom status codes (sgv 0-12)
and entries an app marked deleted (isValid false). Direction, delta, noise and the raw sensor
values are checked for type but not stored: glucast computes its own trend from the readings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from observations.units import MG_DL
from observations.validation import (
    ImportRejected,
    RawReading,
    RowError,
    ascii_digits,
    validate_readings,
)

SGV = "sgv"
# Dexcom receivers report status codes 0-12 in sgv (warm-up, no antenna, ???); 39 is how
# Nightscout stores a receiver's "LOW" (same rules as the Nightscout file import).
STATUS_CODES = range(0, 13)
LOW_MARKER = 39
# Epoch milliseconds of 2001-09-09: smaller `date` values are epoch seconds sent by mistake.
_MIN_EPOCH_MS = 10**12
_DIGITS = re.compile(r"^\d{10,16}$")
# The validation's field names, as a Nightscout entry names them.
FIELD_NAMES = {"time": "date", "value": "sgv", "unit": "sgv", "code": "type"}

SKIP_REASONS = {
    "mbg": "meter readings (mbg): only sensor readings are stored from live uploads",
    "cal": "sensor calibrations (cal)",
    "status": "Dexcom status codes (sgv 0-12), not glucose values",
    "deleted": "entries marked deleted (isValid false)",
}


@dataclass
class ParsedEntries:
    readings: list[RawReading]
    skipped: Counter = field(default_factory=Counter)  # reason -> entries
    n_entries: int = 0
    errors: list[RowError] = field(default_factory=list)  # shape errors; values are checked later
    skipped_at: dict[int, str] = field(default_factory=dict)  # entry position -> why skipped

    def skip(self, position: int, reason: str) -> None:
        self.skipped[reason] += 1
        self.skipped_at[position] = reason

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def epoch_ms_instant(raw: object, name: str, position: int, errors: list[RowError]) -> datetime | None:
    """A Nightscout epoch-milliseconds field (a number or digits) as an instant; None with an
    error naming the field when it is not one (also for epoch seconds sent by mistake)."""
    if isinstance(raw, str) and _DIGITS.match(raw.strip()):
        raw = int(raw.strip())
    if not _is_number(raw) or isinstance(raw, float) and not math.isfinite(raw):
        errors.append(RowError(position, name, f"{str(raw)[:40]!r} is not epoch milliseconds"))
        return None
    if raw < _MIN_EPOCH_MS:
        errors.append(RowError(position, name, f"{str(raw)[:20]} looks like epoch seconds; Nightscout dates are epoch milliseconds"))
        return None
    try:
        return datetime.fromtimestamp(raw / 1000.0, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        errors.append(RowError(position, name, f"{str(raw)[:20]} is not a possible date"))
        return None


def _entry_time(entry: dict, position: int, errors: list[RowError]) -> object:
    """The entry's instant: `date` (epoch ms) first, then `mills`, `dateString`, `sysTime`."""
    for name in ("date", "mills"):
        if name not in entry or entry[name] is None:
            continue
        return epoch_ms_instant(entry[name], name, position, errors)
    for name in ("dateString", "sysTime"):
        if isinstance(entry.get(name), str) and entry[name].strip():
            return entry[name]
    errors.append(RowError(position, "date", "missing: send date (epoch ms) or dateString"))
    return None


def _identifier(entry: dict) -> str:
    for name in ("_id", "identifier", "uuid"):
        value = entry.get(name)
        if isinstance(value, dict):  # mongoexport writes {"$oid": "..."}
            value = value.get("$oid")
        if value not in (None, ""):
            return str(value)
    return ""


def documents_in(document: object, *, noun: str, plural: str, max_items: int | None) -> list:
    """A Nightscout upload body (one JSON object or a list of them) as a list, or ImportRejected
    naming what is wrong with the body as a whole (not a list, empty, too many). Shared by the
    entries and treatments parsers: each item is checked by the caller."""
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise ImportRejected.file_error(
            f"expected a Nightscout {noun} (JSON object) or a list of {plural}", field="body")
    if not document:
        raise ImportRejected.file_error(f"no {plural} given", field="body")
    if max_items is not None and len(document) > max_items:
        raise ImportRejected.file_error(
            f"{len(document)} {plural} in one request; send at most {max_items}", field="body")
    return document


def parse_entries(document: object, *, max_entries: int | None = None) -> ParsedEntries:
    """One entry object or a list of them -> readings to validate, skipped counts, and the
    entries whose fields have the wrong shape (reported with the value errors by
    `check_entries`). Raises ImportRejected only for a body that is not entries at all.
    """
    entries = documents_in(document, noun="entry", plural="entries", max_items=max_entries)
    parsed = ParsedEntries(readings=[], n_entries=len(entries))
    errors = parsed.errors
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            errors.append(RowError(position, "entry", "is not a JSON object"))
            continue
        entry_type = entry.get("type")
        if entry_type is None:
            entry_type = SGV if "sgv" in entry else ("mbg" if "mbg" in entry else None)
        if not isinstance(entry_type, str) or not entry_type:
            errors.append(RowError(position, "type", "missing: sgv, mbg or cal"))
            continue
        if entry_type != SGV:
            parsed.skip(position, SKIP_REASONS.get(entry_type, f"Nightscout {entry_type[:20]} entries"))
            continue
        if entry.get("isValid") is False:
            parsed.skip(position, SKIP_REASONS["deleted"])
            continue
        row_errors: list[RowError] = []
        for name in ("direction", "device"):
            if entry.get(name) is not None and not isinstance(entry[name], str):
                row_errors.append(RowError(position, name, "must be text"))
        for name in ("noise", "delta", "filtered", "unfiltered"):
            if entry.get(name) is not None and not _is_number(entry[name]):
                row_errors.append(RowError(position, name, "must be a number"))
        value = entry.get("sgv")
        if value is None:
            row_errors.append(RowError(position, "sgv", "missing"))
        elif isinstance(value, str) and not ascii_digits(value.strip().replace(".", "", 1)):
            row_errors.append(RowError(position, "sgv", f"{value[:20]!r} is not a number"))
        moment = _entry_time(entry, position, row_errors)
        if row_errors:
            errors.extend(row_errors)
            continue
        # A whole number (JSON integers have no size limit: compare, never convert to float).
        if isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer():
            if int(value) in STATUS_CODES:
                parsed.skip(position, SKIP_REASONS["status"])
                continue
            if int(value) == LOW_MARKER:
                value = "Low"  # stored as the sensor's low limit, flagged
        parsed.readings.append(
            RawReading(
                row=position,
                time=moment,
                value=value,
                unit=MG_DL,
                device=(entry.get("device") or "")[:128],
                source_identifier=_identifier(entry)[:128],
            )
        )
    return parsed


def check_entries(parsed: ParsedEntries, *, tz, now=None):
    """The shared validation of every import, run on the well-shaped entries; raises
    ImportRejected listing every bad entry (shape and value errors together, by position)
    with fields named as Nightscout names them. Returns the checked Readings."""
    errors = list(parsed.errors)
    readings = []
    try:
        readings = validate_readings(parsed.readings, tz=tz, now=now)
    except ImportRejected as exc:
        errors += exc.with_field_names(FIELD_NAMES).errors
    if errors:
        errors.sort(key=lambda e: e.row)
        n_rows = len({e.row for e in errors})
        raise ImportRejected(errors, message=f"{n_rows} entr{'ies' if n_rows != 1 else 'y'} invalid; nothing was saved.")
    return readings
