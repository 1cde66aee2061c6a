"""Parsers for the files people bring: Dexcom Clarity CSV, LibreView CSV, Nightscout entries
JSON, FHIR R4 Bundle JSON and plain CSV.

Each parser turns a file into `RawReading`s that keep the file's own row number (the line a
person sees in a text editor or spreadsheet; the 1-based position for JSON lists and Bundle
entries), so `validation.validate_readings` can name the exact row that is wrong. Parsers do not
judge values: a "Low", an "abc" or a -5 is passed through and rejected (or flagged) by the one
validation path. Rows that are not glucose readings (insulin, carbs, alerts, notes, Nightscout
calibrations, non-Observation FHIR resources) are counted as skipped, never silently dropped.

Why not the `cgm-format` library: evaluated on these fixtures it (1) reports no source row
numbers, so it cannot name the bad row, (2) turns a non-numeric glucose cell into null without
an error and lets negative values through, (3) maps "Low"/"High" to 39/401 instead of the device
limits, (4) converts mmol/L with 18.0182 instead of our one constant, (5) fails a whole US
LibreView export on its AM/PM timestamps, and (6) drops the source identifiers (Dexcom index,
Nightscout _id). These parsers are small and keep all of that.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from observations.codes import GLUCOSE_CODES, KIND_BLOOD, KIND_CGM, LOINC_SYSTEM
from observations.treatments import fhir as treatment_fhir
from observations.treatments.validation import RawTreatment
from observations.units import MG_DL, MMOL_L
from observations.validation import (
    LIMIT_HIGH,
    LIMIT_LOW,
    ImportRejected,
    RawReading,
    RowError,
    check_row_count,
    load_json,
)

DEXCOM = "dexcom"
LIBRE = "libre"
NIGHTSCOUT = "nightscout"
FHIR = "fhir"
CSV = "csv"
TREATMENTS_CSV = "treatments-csv"
AUTO = "auto"
FORMATS = (DEXCOM, LIBRE, NIGHTSCOUT, FHIR, CSV, TREATMENTS_CSV)
FORMAT_CHOICES = (AUTO, *FORMATS)
FORMAT_NAMES = {
    DEXCOM: "Dexcom Clarity CSV",
    LIBRE: "LibreView CSV",
    NIGHTSCOUT: "Nightscout entries JSON",
    FHIR: "FHIR R4 Bundle JSON",
    CSV: "plain CSV (time, value, optional unit)",
    TREATMENTS_CSV: "treatments CSV (time, kind, amount, optional unit, duration_min, insulin_kind, ...)",
}


@dataclass
class ParsedFile:
    format: str
    readings: list[RawReading]
    skipped: Counter = field(default_factory=Counter)  # reason -> number of rows
    # FHIR only: the Patient ids the Observations name as subject (ownership is checked by the
    # caller, which knows who is importing).
    subject_patient_ids: set[str] = field(default_factory=set)
    # Treatments the file carries (FHIR treatment Observations and MedicationAdministrations,
    # a plain treatments CSV), validated by the treatment validation; field names per row.
    treatments: list[RawTreatment] = field(default_factory=list)
    treatment_field_names: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


# --- entry points -----------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """File bytes as text: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252."""
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportRejected.file_error("the file is binary, not a CSV or JSON text file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ImportRejected.file_error("the file is not valid UTF-16 text") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheet programs on Windows save CSV in their legacy code page.
        return data.decode("cp1252", errors="replace")


def detect_format(text: str) -> str:
    """Which of FORMATS the text is, judged by content (never by file name)."""
    head = text.lstrip("\ufeff \t\r\n")
    if head[:1] in "[{":
        try:
            document = load_json(head)
        except ValueError as exc:
            raise ImportRejected.file_error(f"the file looks like JSON but is not usable JSON: {exc}") from None
        if isinstance(document, dict) and document.get("resourceType") == "Bundle":
            return FHIR
        if isinstance(document, dict) and document.get("resourceType"):
            raise ImportRejected.file_error(
                f"a FHIR {document['resourceType']} resource; send a Bundle of Observations"
            )
        if _looks_like_nightscout(document):
            return NIGHTSCOUT
        raise ImportRejected.file_error(
            "JSON that is neither a FHIR Bundle nor a list of Nightscout entries"
        )
    first_lines = "\n".join(head.splitlines()[:15])
    if "Event Type" in first_lines and "Glucose Value" in first_lines:
        return DEXCOM
    if "Device Timestamp" in first_lines and "Record Type" in first_lines:
        return LIBRE
    if _treatments_csv_layout(head) is not None:
        return TREATMENTS_CSV
    try:
        _plain_csv_layout(head)
    except ImportRejected:
        raise ImportRejected.file_error(
            "not a recognised CGM file; supported: " + ", ".join(FORMAT_NAMES.values())
        ) from None
    return CSV


def parse_bytes(data: bytes, *, fmt: str = AUTO) -> ParsedFile:
    """Parse a whole file. Raises ImportRejected for a wrong/unreadable file."""
    if fmt not in FORMAT_CHOICES:
        raise ImportRejected.file_error(
            f"unknown format {fmt!r}; use one of {', '.join(FORMAT_CHOICES)}", field="format"
        )
    if not data.strip():
        raise ImportRejected.file_error("the file is empty")
    text = decode_text(data)
    detected = detect_format(text) if fmt == AUTO else fmt
    parser = {
        DEXCOM: parse_dexcom,
        LIBRE: parse_libre,
        NIGHTSCOUT: parse_nightscout,
        FHIR: parse_fhir_bundle,
        CSV: parse_plain_csv,
        TREATMENTS_CSV: parse_treatments_csv,
    }[detected]
    if detected in (NIGHTSCOUT, FHIR):
        try:
            document = load_json(text.lstrip("\ufeff"))
        except ValueError as exc:
            raise ImportRejected.file_error(f"{exc}; expected {FORMAT_NAMES[detected]}") from None
        return parser(document)
    return parser(text)


# --- CSV helpers ------------------------------------------------------------------------------


def _csv_rows(text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each CSV record; the line number is where the record ends."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter)
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:  # e.g. a bare carriage return in an unquoted cell: was a 500
        raise ImportRejected.file_error(f"not a readable CSV file (line {reader.line_num + 1}: {exc})") from None


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()


def _unit_in_header(header: str) -> str | None:
    lowered = header.lower()
    if "mmol" in lowered:
        return MMOL_L
    if "mg/dl" in lowered or "mg_dl" in lowered or "mgdl" in lowered:
        return MG_DL
    return None


# --- Dexcom Clarity ---------------------------------------------------------------------------

_DEXCOM_GLUCOSE_EVENTS = {"egv": KIND_CGM, "calibration": KIND_BLOOD}


def _dexcom_time(text: str) -> datetime | str:
    """Clarity writes 2019-10-14T16:42:37 (older) or 2025-05-01 0:01:47 (newer)."""
    if len(text) == 19:
        try:
            return datetime.fromisoformat(text)  # fast path for the common layout
        except ValueError:
            pass
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return text  # validation reports it with the row number


def parse_dexcom(text: str) -> ParsedFile:
    rows = _csv_rows(text)
    header: list[str] | None = None
    for _, cells in rows:
        if "Event Type" in cells and any(c.startswith("Glucose Value") for c in cells):
            header = [c.strip() for c in cells]
            break
    if header is None:
        raise ImportRejected.file_error(
            "not a Dexcom Clarity export: no header row with 'Event Type' and 'Glucose Value'"
        )
    col = {name: i for i, name in enumerate(header)}
    glucose_col = next(c for c in header if c.startswith("Glucose Value"))
    unit = _unit_in_header(glucose_col)
    if unit is None:
        raise ImportRejected.file_error(f"unknown glucose unit in the column {glucose_col!r}")
    i_time = next((i for name, i in col.items() if name.startswith("Timestamp")), None)
    if i_time is None:
        raise ImportRejected.file_error("not a Dexcom Clarity export: no Timestamp column")
    i_event, i_value = col["Event Type"], col[glucose_col]
    i_index, i_source = col.get("Index"), col.get("Source Device ID")
    i_device_info = col.get("Device Info")

    parsed = ParsedFile(DEXCOM, [])
    device = ""
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        event = _cell(cells, i_event)
        stamp = _cell(cells, i_time)
        if not stamp:
            # Header block: FirstName, LastName, Device, Sensor, Alert settings (no timestamp).
            if event == "Device":
                device = _cell(cells, i_device_info) or _cell(cells, i_source)
            continue
        kind = _DEXCOM_GLUCOSE_EVENTS.get(event.lower())
        if kind is None:
            parsed.skipped[f"Dexcom {event or 'unknown'} event"] += 1
            continue
        parsed.readings.append(
            RawReading(
                row=line,
                time=_dexcom_time(stamp),
                value=_cell(cells, i_value),
                unit=unit,
                kind=kind,
                device=device or _cell(cells, i_source),
                source_identifier=_cell(cells, i_index),
            )
        )
    return parsed


# --- LibreView --------------------------------------------------------------------------------

# Export settings decide the date format; the file does not say which it used.
_LIBRE_TIME_FORMATS = (
    "%m-%d-%Y %I:%M %p",
    "%m/%d/%Y %I:%M %p",
    "%d-%m-%Y %H:%M",
    "%m-%d-%Y %H:%M",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
)
_LIBRE_RECORD_COLUMNS = {0: "Historic Glucose", 1: "Scan Glucose", 2: "Strip Glucose"}
_LIBRE_SKIPPED = {
    3: "Libre record type 3",
    4: "Libre insulin record",
    5: "Libre food record",
    6: "Libre note/exercise record",
    7: "Libre sensor event",
}


def _strptime_or_none(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return None


def _choose_libre_time_format(stamps: list[str], unit: str) -> str | None:
    """The format that reads the most timestamps; a tie (all days <= 12) is broken by the unit:
    mmol/L exports come from day-first locales, mg/dL exports mostly from the US (month first)."""
    sample = stamps[:2000] + stamps[-2000:]
    scores = {fmt: sum(_strptime_or_none(s, fmt) is not None for s in sample) for fmt in _LIBRE_TIME_FORMATS}
    best = max(scores.values(), default=0)
    if best == 0:
        return None
    tied = [fmt for fmt in _LIBRE_TIME_FORMATS if scores[fmt] == best]
    if "%d-%m-%Y %H:%M" in tied and "%m-%d-%Y %H:%M" in tied:
        return "%d-%m-%Y %H:%M" if unit == MMOL_L else "%m-%d-%Y %H:%M"
    if "%d/%m/%Y %H:%M" in tied and "%m/%d/%Y %H:%M" in tied:
        return "%d/%m/%Y %H:%M" if unit == MMOL_L else "%m/%d/%Y %H:%M"
    return tied[0]


def parse_libre(text: str) -> ParsedFile:
    records = list(_csv_rows(text))
    header_at = next(
        (k for k, (_, cells) in enumerate(records[:10]) if "Device Timestamp" in [c.strip() for c in cells]),
        None,
    )
    if header_at is None:
        raise ImportRejected.file_error(
            "not a LibreView export: no header row with 'Device Timestamp' in the first lines"
        )
    header = [c.strip() for c in records[header_at][1]]
    col = {name: i for i, name in enumerate(header)}
    if "Record Type" not in col:
        raise ImportRejected.file_error("not a LibreView export: no 'Record Type' column")
    value_cols: dict[int, tuple[int, str]] = {}
    for record_type, prefix in _LIBRE_RECORD_COLUMNS.items():
        name = next((h for h in header if h.startswith(prefix)), None)
        if name is not None:
            unit = _unit_in_header(name)
            if unit is None:
                raise ImportRejected.file_error(f"unknown glucose unit in the column {name!r}")
            value_cols[record_type] = (col[name], unit)
    if 0 not in value_cols:
        raise ImportRejected.file_error("not a LibreView export: no 'Historic Glucose' column")
    i_time, i_type = col["Device Timestamp"], col["Record Type"]
    i_device = col.get("Device")
    data = [(line, cells) for line, cells in records[header_at + 1 :] if any(c.strip() for c in cells)]
    time_format = _choose_libre_time_format(
        [_cell(cells, i_time) for _, cells in data], value_cols[0][1]
    )

    parsed = ParsedFile(LIBRE, [])
    errors: list[RowError] = []
    for line, cells in data:
        type_text = _cell(cells, i_type)
        try:
            record_type = int(type_text)
        except ValueError:
            errors.append(RowError(line, "Record Type", f"{type_text[:20]!r} is not a record type number"))
            continue
        if record_type not in value_cols:
            parsed.skipped[_LIBRE_SKIPPED.get(record_type, f"Libre record type {record_type}")] += 1
            continue
        index, unit = value_cols[record_type]
        stamp = _cell(cells, i_time)
        moment = _strptime_or_none(stamp, time_format) if time_format else None
        parsed.readings.append(
            RawReading(
                row=line,
                time=moment or stamp,
                value=_cell(cells, index),
                unit=unit,
                kind=KIND_BLOOD if record_type == 2 else KIND_CGM,
                device=_cell(cells, i_device),
            )
        )
    if errors:
        raise ImportRejected(errors)
    return parsed


# --- Nightscout -------------------------------------------------------------------------------

# Dexcom receivers report status codes 0-12 in the sgv field (sensor warm-up, no antenna,
# ???); they are not glucose values. 39 is how Nightscout stores a receiver's "LOW".
_NIGHTSCOUT_STATUS_CODES = range(0, 13)
_NIGHTSCOUT_LOW = 39


def _looks_like_nightscout(document: object) -> bool:
    entries = document.get("entries") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        return False
    first = entries[0]
    return isinstance(first, dict) and (
        "sgv" in first or "mbg" in first or ("type" in first and ("date" in first or "dateString" in first))
    )


def _nightscout_time(entry: dict) -> object:
    date = entry.get("date")
    if isinstance(date, (int, float)) and not isinstance(date, bool):
        try:
            return datetime.fromtimestamp(date / 1000.0, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return str(date)
    return entry.get("dateString") or entry.get("sysTime") or date


def parse_nightscout(document: object) -> ParsedFile:
    entries = document.get("entries") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise ImportRejected.file_error("not Nightscout entries: expected a JSON list of entries")
    parsed = ParsedFile(NIGHTSCOUT, [])
    errors: list[RowError] = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            errors.append(RowError(position, "entry", "is not a JSON object"))
            continue
        entry_type = entry.get("type") or ("sgv" if "sgv" in entry else "mbg" if "mbg" in entry else "")
        if entry_type == "sgv":
            value, kind = entry.get("sgv"), KIND_CGM
            if isinstance(value, int) and not isinstance(value, bool):
                if value in _NIGHTSCOUT_STATUS_CODES:
                    parsed.skipped["Nightscout sensor status code"] += 1
                    continue
                if value == _NIGHTSCOUT_LOW:
                    value = "Low"
        elif entry_type == "mbg":
            value, kind = entry.get("mbg"), KIND_BLOOD
        else:
            parsed.skipped[f"Nightscout {entry_type or 'untyped'} entry"] += 1
            continue
        identifier = entry.get("_id", "")
        if isinstance(identifier, dict):  # mongoexport writes {"$oid": "..."}
            identifier = identifier.get("$oid", "")
        parsed.readings.append(
            RawReading(
                row=position,
                time=_nightscout_time(entry),
                value=value,
                unit=MG_DL,  # Nightscout stores sgv/mbg in mg/dL whatever the display unit
                kind=kind,
                device=str(entry.get("device") or ""),
                source_identifier=str(identifier or ""),
            )
        )
    if errors:
        raise ImportRejected(errors)
    return parsed


# --- FHIR R4 Bundle ---------------------------------------------------------------------------

FHIR_BUNDLE_TYPES = ("collection", "transaction", "batch")
_PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([^/]+)$")
_COMPARATOR_LIMITS = {"<": LIMIT_LOW, "<=": LIMIT_LOW, ">": LIMIT_HIGH, ">=": LIMIT_HIGH}
_SKIPPED_STATUSES = {"entered-in-error", "cancelled"}


def _fhir_errors(exc) -> list[RowError]:
    """pydantic errors from fhir.resources, as rows (Bundle entry positions) and fields."""
    errors = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        row = 0
        if len(loc) >= 2 and loc[0] == "entry" and isinstance(loc[1], int):
            row = loc[1] + 1
            loc = loc[2:]
            if loc[:1] == ["resource"]:
                loc = loc[1:]
        field_name = ".".join(str(part) for part in loc) or "Bundle"
        errors.append(RowError(row, field_name, str(error.get("msg", "invalid"))))
    return errors


# Per-reading primitives of a glucose Observation / Bundle entry: (path, fhirtypes name,
# JSON type they must have to be checked on their own, a valid stand-in value).
_VARYING_PRIMITIVES = (
    (("id",), "IdType", str, "reading"),
    (("effectiveDateTime",), "DateTimeType", str, "2000-01-01T00:00:00Z"),
    (("valueQuantity", "value"), "DecimalType", (int, float), 100),
)
_VARYING_ENTRY_PRIMITIVES = ((("fullUrl",), "UriType", str, "urn:uuid:00000000-0000-4000-8000-000000000000"),)


class _ShapeValidator:
    """Validates many resources that differ only in a few primitives (a CGM Bundle: the same
    Observation 100,000 times with another id, time and value) with fhir.resources, fast.

    Each varying primitive is checked with its fhir.resources type on its own and replaced by a
    valid stand-in; what remains (the resource's "shape") is validated with the resource model
    once per distinct shape. A primitive of an unexpected JSON type is left in place, so such a
    resource gets a full model validation of its own. Same checks, a few microseconds a reading
    instead of a millisecond.
    """

    def __init__(self, model, varying):
        from pydantic import TypeAdapter

        from fhir.resources.R4B import fhirtypes

        self.model = model
        self.varying = [(path, TypeAdapter(getattr(fhirtypes, t)), json_type, stand_in) for path, t, json_type, stand_in in varying]
        self.shapes: dict[str, list[tuple[str, str]]] = {}  # shape -> (field, reason) errors

    def errors(self, resource: dict) -> list[tuple[str, str]]:
        from pydantic import ValidationError

        found: list[tuple[str, str]] = []
        shape = resource
        for path, adapter, json_type, stand_in in self.varying:
            holder = resource
            for key in path[:-1]:
                holder = holder.get(key) if isinstance(holder, dict) else None
            if not isinstance(holder, dict) or path[-1] not in holder:
                continue
            value = holder[path[-1]]
            if not isinstance(value, json_type) or isinstance(value, bool):
                continue
            try:
                adapter.validate_python(value)
            except ValidationError as exc:
                found.append((".".join(path), exc.errors()[0].get("msg", "invalid")))
            shape = _replace_path(shape, path, stand_in)
        key = json.dumps(shape, sort_keys=True, default=str)
        if key not in self.shapes:
            try:
                self.model.model_validate(shape)
                self.shapes[key] = []
            except ValidationError as exc:
                self.shapes[key] = [(e.field, e.reason) for e in _fhir_errors(exc)]
        return found + self.shapes[key]


def _replace_path(document: dict, path: tuple, value) -> dict:
    """A copy of `document` with the value at `path` replaced (copies only along the path)."""
    copy = dict(document)
    if len(path) == 1:
        copy[path[0]] = value
    else:
        copy[path[0]] = _replace_path(copy[path[0]], path[1:], value)
    return copy


def validate_fhir_bundle(document: object) -> None:
    """Structural validation with fhir.resources (R4B models: R4-compatible for Bundle and
    Observation; fhir.resources 8 has no separate R4 package).

    The Bundle without entries, each entry without its resource, and each resource are
    validated with their own models, so every error knows its entry position.
    """
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.bundle import Bundle, BundleEntry
    from pydantic import ValidationError

    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise ImportRejected.file_error("not a FHIR Bundle: resourceType must be 'Bundle'", field="resourceType")
    entries = document.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ImportRejected.file_error("Bundle.entry must be a list of objects", field="entry")
    check_row_count(len(entries), field="entry")
    errors: list[RowError] = []
    try:
        Bundle.model_validate({k: v for k, v in document.items() if k != "entry"})
    except ValidationError as exc:
        errors.extend(_fhir_errors(exc))
    entry_validator = _ShapeValidator(BundleEntry, _VARYING_ENTRY_PRIMITIVES)
    resource_validators: dict[str, _ShapeValidator] = {}
    for position, entry in enumerate(entries, start=1):
        shell = {k: v for k, v in entry.items() if k != "resource"}
        for field_name, reason in entry_validator.errors(shell):
            errors.append(RowError(position, field_name, reason))
        resource = entry.get("resource")
        if resource is None:
            continue
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if resource_type not in resource_validators:
            try:
                model = get_fhir_model_class(resource_type)
            except (KeyError, ValueError, TypeError, AttributeError):
                shown = f"{resource_type!r} is not a FHIR resource type" if resource_type else "missing"
                errors.append(RowError(position, "resourceType", shown))
                continue
            varying = _VARYING_PRIMITIVES if resource_type == "Observation" else ()
            resource_validators[resource_type] = _ShapeValidator(model, varying)
        # locations are relative to the resource here; the row is the entry's position
        for field_name, reason in resource_validators[resource_type].errors(resource):
            errors.append(RowError(position, "resource" if field_name == "Bundle" else field_name, reason))
    if errors:
        raise ImportRejected(errors, message="Malformed FHIR Bundle; nothing was saved.")


def _loinc_code(codeable: object) -> str | None:
    codings = codeable.get("coding") if isinstance(codeable, dict) else None
    for coding in codings or []:
        if isinstance(coding, dict) and coding.get("system") == LOINC_SYSTEM:
            return coding.get("code")
    return None


def parse_fhir_bundle(document: object) -> ParsedFile:
    validate_fhir_bundle(document)
    bundle_type = document.get("type")
    if bundle_type not in FHIR_BUNDLE_TYPES:
        raise ImportRejected.file_error(
            f"Bundle.type {bundle_type!r} is not accepted; send a collection or transaction",
            field="type",
        )
    parsed = ParsedFile(FHIR, [])
    errors: list[RowError] = []
    for position, entry in enumerate(document.get("entry") or [], start=1):
        resource = entry.get("resource") or {}
        resource_type = resource.get("resourceType")
        if resource_type not in ("Observation", "MedicationAdministration"):
            parsed.skipped[f"FHIR {resource_type or 'empty'} entry"] += 1
            continue
        if resource.get("status") in _SKIPPED_STATUSES | treatment_fhir.SKIPPED_STATUSES:
            parsed.skipped[f"FHIR {resource_type} with status {resource['status']}"] += 1
            continue
        code = _loinc_code(resource.get("code"))
        if resource_type == "MedicationAdministration" or treatment_fhir.is_treatment_observation(resource, code):
            match = _PATIENT_REFERENCE.search((resource.get("subject") or {}).get("reference") or "")
            if match:
                parsed.subject_patient_ids.add(match.group(1))
            raw = treatment_fhir.raw_treatment_from_resource(resource, position, code, errors)
            if raw is not None:
                parsed.treatments.append(raw)
                parsed.treatment_field_names[position] = (
                    treatment_fhir.MEDICATION_FIELD_NAMES if resource_type == "MedicationAdministration"
                    else treatment_fhir.OBSERVATION_FIELD_NAMES
                )
            continue
        if code not in GLUCOSE_CODES:
            shown = f"LOINC {code}" if code else "no LOINC coding"
            accepted = ", ".join([*GLUCOSE_CODES, *treatment_fhir.codes.LOINC_TO_KIND])
            errors.append(
                RowError(position, "code", f"{shown}; accepted codes: {accepted} (glucose, carbs, steps, heart rate)")
            )
            continue
        quantity = resource.get("valueQuantity")
        if not isinstance(quantity, dict):
            errors.append(RowError(position, "valueQuantity", "missing: a glucose Observation needs valueQuantity"))
            continue
        if "effectiveDateTime" not in resource:
            errors.append(RowError(position, "effectiveDateTime", "missing"))
            continue
        reference = (resource.get("subject") or {}).get("reference") or ""
        match = _PATIENT_REFERENCE.search(reference)
        if match:
            parsed.subject_patient_ids.add(match.group(1))
        device = resource.get("device") or {}
        parsed.readings.append(
            RawReading(
                row=position,
                time=resource["effectiveDateTime"],
                value=quantity.get("value"),
                unit=quantity.get("code") or quantity.get("unit"),
                code=code,
                device=str(device.get("display") or device.get("reference") or ""),
                source_identifier=str(resource.get("id") or entry.get("fullUrl") or ""),
                limit=_COMPARATOR_LIMITS.get(quantity.get("comparator")),
            )
        )
    if errors:
        raise ImportRejected(errors, message="Invalid FHIR Observations; nothing was saved.")
    return parsed


# How the shared validation's field names read in a FHIR Observation.
FHIR_FIELD_NAMES = {
    "time": "effectiveDateTime", "value": "valueQuantity.value", "unit": "valueQuantity.code",
    "device": "device.display", "source_identifier": "id",
}
# ... and in a Nightscout entry.
NIGHTSCOUT_FIELD_NAMES = {"source_identifier": "_id"}
# The field names each format's rejections use (the shared validation's names otherwise).
FIELD_NAMES = {FHIR: FHIR_FIELD_NAMES, NIGHTSCOUT: NIGHTSCOUT_FIELD_NAMES}


# --- plain CSV --------------------------------------------------------------------------------

_TIME_HEADERS = {
    "time", "timestamp", "datetime", "date_time", "effective_at", "effectivedatetime",
    "effective_date_time", "date", "time_local", "local_time", "device_timestamp",
    "datestring", "date_string", "measured_at", "recorded_at",
}
_VALUE_HEADERS = {"value", "glucose", "glucose_value", "bg", "sgv", "reading", "sensor_glucose"}
_UNIT_HEADERS = {"unit", "units", "uom", "glucose_unit"}
_SUBJECT_HEADERS = {"subject", "subject_id", "patient", "patient_id", "person"}


def _normalize_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


@dataclass
class _PlainLayout:
    delimiter: str
    header_line: int
    i_time: int
    i_clock: int | None  # a separate time-of-day column next to a date column
    i_value: int
    i_unit: int | None
    i_subject: int | None
    header_unit: str | None


def _plain_csv_layout(text: str) -> _PlainLayout:
    lines = text.lstrip("\ufeff").splitlines()
    header_index = next((k for k, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise ImportRejected.file_error("the file is empty")
    header_line = lines[header_index]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    header = next(csv.reader([header_line], delimiter=delimiter))
    names = [_normalize_header(h) for h in header]

    def find(candidates, prefix=None):
        for i, name in enumerate(names):
            if name in candidates:
                return i
        if prefix:
            for i, name in enumerate(names):
                if any(name.startswith(p) for p in prefix):
                    return i
        return None

    i_clock = None
    if "date" in names and "time" in names:  # separate date and time-of-day columns
        i_time, i_clock = names.index("date"), names.index("time")
    else:
        i_time = find(_TIME_HEADERS, prefix=("timestamp", "time_", "date_time"))
    i_value = find(_VALUE_HEADERS, prefix=("glucose", "value_", "bg_"))
    if i_time is None or i_value is None:
        raise ImportRejected.file_error(
            "a plain CSV needs a header row with a time column (time, timestamp, date...) and a "
            f"value column (value, glucose, glucose_mg_dl...); found {header[:6]}"
        )
    return _PlainLayout(
        delimiter=delimiter,
        header_line=header_index + 1,
        i_time=i_time,
        i_clock=i_clock,
        i_value=i_value,
        i_unit=find(_UNIT_HEADERS),
        i_subject=find(_SUBJECT_HEADERS),
        header_unit=_unit_in_header(header[i_value]),
    )


def parse_plain_csv(text: str) -> ParsedFile:
    layout = _plain_csv_layout(text)
    parsed = ParsedFile(CSV, [])
    subjects: set[str] = set()
    for line, cells in _csv_rows(text, delimiter=layout.delimiter):
        if line <= layout.header_line or not any(c.strip() for c in cells):
            continue
        if layout.i_subject is not None:
            subjects.add(_cell(cells, layout.i_subject))
        unit = _cell(cells, layout.i_unit) if layout.i_unit is not None else ""
        stamp = _cell(cells, layout.i_time)
        if layout.i_clock is not None:
            stamp = f"{stamp} {_cell(cells, layout.i_clock)}".strip()
        parsed.readings.append(
            RawReading(
                row=line,
                time=stamp,
                value=_cell(cells, layout.i_value),
                unit=unit or layout.header_unit or MG_DL,
            )
        )
    if len(subjects) > 1:
        raise ImportRejected.file_error(
            f"the file holds readings of {len(subjects)} subjects (subject column); "
            "import one person's readings per file"
        )
    return parsed


# --- treatments CSV -----------------------------------------------------------------------------
# A plain, documented layout (docs/treatments.md): a header row naming the columns, in any order,
# comma, semicolon or tab separated:
#   time, kind, amount                         required
#   unit, duration_min, insulin_kind, bolus_type, absorption_min, identifier, device   optional
# time as in the readings CSV (naive = the person's zone); kind one of bolus, basal_rate,
# temp_basal, carbs, steps, heart_rate. Every cell is judged by the treatment validation.

TREATMENT_COLUMNS = ("time", "kind", "amount", "unit", "duration_min", "insulin_kind", "bolus_type",
                     "absorption_min", "identifier", "device")
_TREATMENT_ALIASES = {"effective_at": "time", "timestamp": "time", "datetime": "time", "type": "kind",
                      "value": "amount", "duration": "duration_min", "insulin": "insulin_kind", "id": "identifier"}


def _treatments_csv_layout(text: str) -> tuple[str, int, dict[str, int]] | None:
    """(delimiter, header line, column -> index) when the text is a treatments CSV, else None."""
    lines = text.lstrip("\ufeff").splitlines()
    header_index = next((k for k, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        return None
    header_line = lines[header_index]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    names = [_normalize_header(h) for h in next(csv.reader([header_line], delimiter=delimiter))]
    columns: dict[str, int] = {}
    for index, name in enumerate(names):
        name = _TREATMENT_ALIASES.get(name, name)
        if name in TREATMENT_COLUMNS and name not in columns:
            columns[name] = index
    if not {"time", "kind", "amount"} <= set(columns):
        return None
    return delimiter, header_index + 1, columns


def parse_treatments_csv(text: str) -> ParsedFile:
    layout = _treatments_csv_layout(text)
    if layout is None:
        raise ImportRejected.file_error("a treatments CSV needs a header row with time, kind and amount columns")
    delimiter, header_line, columns = layout
    parsed = ParsedFile(TREATMENTS_CSV, [])
    for line, cells in _csv_rows(text, delimiter=delimiter):
        if line <= header_line or not any(c.strip() for c in cells):
            continue

        def cell(name):
            value = _cell(cells, columns.get(name)) if name in columns else ""
            return value or None

        parsed.treatments.append(RawTreatment(
            row=line, kind=cell("kind"), time=cell("time"), amount=cell("amount"), unit=cell("unit"),
            duration_min=cell("duration_min"), insulin_kind=cell("insulin_kind"), bolus_type=cell("bolus_type"),
            absorption_min=cell("absorption_min"), source_identifier=cell("identifier") or "", device=cell("device") or "",
        ))
        parsed.treatment_field_names[line] = {"source_identifier": "identifier"}
    check_row_count(len(parsed.treatments))
    return parsed
