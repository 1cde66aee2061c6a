"""Nightscout API v3 `entries` over glucast's stored readings.

A created entry goes through exactly what API v1 uses (`store_entries`: the one Nightscout
entry parser, the shared validation of every import, the idempotent bulk insert), so the rules
have one home. What v3 adds is the document's life:

- `identifier`: the client's, or Nightscout's derived one (documents.calculate_identifier),
  kept in Observation.source_identifier. A reading stored without one (a file import, an API v1
  upload without `_id`) answers with the 24-hex id API v1 shows for it.
- deduplication: one reading per person and instant (the unique constraint). Posting an entry
  for an instant already stored answers 200 with `isDeduplication: true`, as Nightscout's
  fallback deduplication on `date` and `type` does, and the stored reading takes the new
  identifier (so the client's later PATCH or DELETE finds it); its value is kept.
- `srvCreated` is the row's created_at, `srvModified` its modified_at (the database's clock at
  the insert, moved on by a change): the cursor of `history`, which also returns soft-deleted readings with `isValid: false`.
- listings serve back only what came in over API v3: `search`, `history` and `lastModified`
  list the readings this channel stored, not a person's file imports or other apps' uploads.
  AndroidAPS reads them back (to a full sync, or as its glucose source when set to
  "NSClient"), and glucast must not become a source of data for a dosing system; AndroidAPS
  finds its own readings there under the identifiers it was given. A reading's identifier
  still finds it whatever its source (PATCH, DELETE, GET by identifier).
- DELETE marks the reading entered-in-error (FHIR's status; forecasts skip it) and PATCH may
  change `sgv` (checked as any new reading is); every other field is Nightscout's immutable
  set or is not stored (direction, noise, raw values).
"""

from __future__ import annotations

import re
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from observations.models import Observation, ObservationStatus
from observations.nightscout.documents import (
    COMPARISONS,
    SearchQuery,
    V3Error,
    check_immutable,
    epoch_ms,
    floor_ms,
    history_page,
    is_number,
    normalize_for_create,
    parse_instant,
    project,
    rejected,
    require_object,
    validate_common,
)
from observations.nightscout.entries import FIELD_NAMES
from observations.nightscout.services import V3_UPLOAD, as_entry, store_entries
from observations.services import schedule_window_refresh
from observations.units import MG_DL
from observations.validation import ImportRejected, RawReading, validate_readings

_V1_ID = re.compile(r"^[0-9a-f]{24}$")
_SORTS = {"date": "effective_at", "srvModified": "srv_modified", "srvCreated": "created_at"}


def _rows(person):
    return Observation.objects.for_person(person).filter(kind=Observation.Kind.CGM)


def _served(person):
    """What the listings (search, history, lastModified) serve: readings that came in over
    API v3 (see the module doc)."""
    return _rows(person).filter(source=V3_UPLOAD)


def _with_srv(queryset):
    return queryset.annotate(srv_modified=F("modified_at"))


def identifier_of(row: Observation) -> str:
    return row.source_identifier or f"{row.pk:024x}"


def as_document(row: Observation, *, tz) -> dict:
    """A stored reading as an API v3 entry (API v1's entry shape plus the v3 fields)."""
    doc = as_entry(row)
    doc.pop("_id")
    offset = row.effective_at.astimezone(tz).utcoffset()
    modified = row.modified_at
    doc.update(
        identifier=identifier_of(row),
        utcOffset=int(offset.total_seconds() // 60) if offset else 0,
        units="mg/dl",
        srvCreated=floor_ms(min(row.created_at, modified)),
        srvModified=floor_ms(modified),
    )
    if row.status == ObservationStatus.ENTERED_IN_ERROR:
        doc["isValid"] = False
    return doc


def find(person, identifier: str) -> Observation | None:
    rows = _rows(person)
    row = rows.filter(source_identifier=identifier).order_by("pk").first()
    if row is None and _V1_ID.match(identifier) and int(identifier, 16) < 2**63:
        row = rows.filter(pk=int(identifier, 16), source_identifier="").first()
    return row


def _found(person, identifier: str) -> Observation:
    row = find(person, identifier)
    if row is None:
        raise V3Error(404)
    return row


def create(*, person, doc: object, now: datetime | None = None) -> tuple[int, dict]:
    """POST /entries: (HTTP status, the answer's top-level fields). Raises V3Error (nothing
    stored) for a document Nightscout or glucast's validation refuses."""
    doc = dict(require_object(doc))
    # The v3 identifier is the reading's id here, not an API v1 `_id` or xDrip+ `uuid` beside it.
    doc.pop("_id", None)
    doc.pop("uuid", None)
    normalize_for_create(doc)
    validate_common(doc)
    if doc.get("type", "sgv") == "sgv" and "sgv" not in doc:
        raise V3Error(400, "sgv: missing", field="sgv")
    now = now or timezone.now()
    try:
        summary = store_entries(person, doc, channel=V3_UPLOAD, now=now)
    except ImportRejected as exc:
        raise rejected(exc.with_field_names(FIELD_NAMES)) from None
    identifier = doc["identifier"]
    if summary["skipped"]:
        reason = next(iter(summary["skipped_reasons"]), "not a sensor reading")
        return 200, {"identifier": identifier, "isDeduplication": False, "lastModified": epoch_ms(now),
                     "stored": False, "reason": f"not stored: {reason}"}
    row = _rows(person).filter(effective_at=summary["newest"]).first()
    if summary["created"]:
        return 201, {"identifier": identifier, "lastModified": floor_ms(row.modified_at)}
    fields = {"identifier": identifier, "isDeduplication": True}
    previous = identifier_of(row)
    if previous != identifier:
        fields["deduplicatedIdentifier"] = previous
        Observation.objects.filter(pk=row.pk).update(source_identifier=identifier[:128], modified_at=now)
        row.modified_at = now
    fields["lastModified"] = floor_ms(row.modified_at)
    return 200, fields


def read(*, person, identifier: str, fields: list[str] | None = None) -> dict:
    row = _found(person, identifier)
    if row.status == ObservationStatus.ENTERED_IN_ERROR:
        raise V3Error(410)
    return project(as_document(row, tz=person.tz), fields)


def _filter_value(name: str, value: str):
    moment = parse_instant(value)
    if moment is None:
        raise V3Error(400, f"{name}: {value[:40]!r} is neither epoch milliseconds nor an ISO date-time", field=name)
    return moment


def search(*, person, query: SearchQuery) -> list[dict]:
    """GET /entries: valid readings matching the filters, sorted, limited, projected."""
    rows = _with_srv(_served(person).usable())
    for flt in query.filters:
        if flt.field == "type":
            if flt.operator != "eq":
                raise V3Error(400, "type: only type=sgv (eq) is supported", field="type")
            if flt.value != "sgv":
                return []  # glucast stores sensor readings only
            continue
        column = {"date": "effective_at", "srvModified": "srv_modified", "srvCreated": "created_at"}.get(flt.field)
        if flt.field in ("identifier", "device") and flt.operator == "eq":
            key = "source_identifier" if flt.field == "identifier" else "device"
            rows = rows.filter(**{key: flt.value[:128]})
            continue
        if column is None or flt.operator not in COMPARISONS:
            raise V3Error(400, f"{flt.field}${flt.operator}: filters on date, srvModified and srvCreated "
                               "(eq, gt, gte, lt, lte), type, identifier and device (eq) are supported",
                          field=flt.field[:60])
        rows = rows.filter(**{f"{column}{COMPARISONS[flt.operator]}": _filter_value(flt.field, flt.value)})
    if query.sort is not None and query.sort not in _SORTS:
        raise V3Error(400, f"sort: {query.sort[:40]!r} cannot be sorted on; use date, srvModified or srvCreated",
                      field="sort")
    column = _SORTS.get(query.sort or "date")
    rows = rows.order_by(f"-{column}" if query.descending else column, "-pk" if query.descending else "pk")
    page = rows[query.skip : query.skip + query.limit]
    return [project(as_document(row, tz=person.tz), query.fields) for row in page]


def history(*, person, since_ms: int, inclusive: bool, limit: int, fields=None) -> tuple[list[dict], int | None]:
    """GET /entries/history/{ms}: readings created or changed after `since_ms`, oldest change
    first, deleted ones too. Returns (documents, the newest srvModified among them)."""
    rows = _with_srv(_served(person))
    page = history_page(rows, since_ms=since_ms, inclusive=inclusive, limit=limit)
    newest = max((floor_ms(row.srv_modified) for row in page), default=None)
    return [project(as_document(row, tz=person.tz), fields) for row in page], newest


def last_modified(person) -> int | None:
    value = _with_srv(_served(person)).order_by("-srv_modified").values_list("srv_modified", flat=True).first()
    return floor_ms(value) if value else None


def _new_value(row: Observation, value: object, tz, now: datetime) -> float | None:
    """A changed `sgv` through the shared validation (the reading's own time and device)."""
    if not is_number(value) and not isinstance(value, str):
        raise V3Error(400, "sgv: must be a number", field="sgv")
    try:
        (reading,) = validate_readings(
            [RawReading(row=1, time=row.effective_at, value=value, unit=MG_DL, device=row.device)], tz=tz, now=now
        )
    except ImportRejected as exc:
        raise rejected(exc.with_field_names(FIELD_NAMES)) from None
    return reading.value_mg_dl


def update(*, person, identifier: str, doc: object, replace: bool = False, now: datetime | None = None) -> tuple[int, dict]:
    """PATCH (or PUT, `replace`: every common field required) /entries/{identifier}."""
    doc = dict(require_object(doc))
    now = now or timezone.now()
    row = find(person, identifier)
    if row is None:
        # Nightscout's PUT would create it; here identifiers are found, never claimed (a
        # document is created by POST), so an unknown one is a 404 for PATCH and PUT alike.
        raise V3Error(404)
    if row.status == ObservationStatus.ENTERED_IN_ERROR:
        raise V3Error(410)
    stored = as_document(row, tz=person.tz)
    # A reading's utcOffset is not stored: the document's is the person's zone at that moment.
    # A phone in another zone (travelling, a person left on the default zone) sends its own, which
    # is no change to anything glucast keeps, so it is not held against the stored document.
    check_immutable(doc, {name: value for name, value in stored.items() if name != "utcOffset"})
    # PUT carries the whole document (date, utcOffset, app), as Nightscout requires; PATCH a part.
    validate_common({"identifier": identifier, **doc} if replace else doc, patching=not replace)
    changes = {}
    if "sgv" in doc and doc["sgv"] != stored["sgv"]:
        value = _new_value(row, doc["sgv"], person.tz, now)
        if value is not None and abs(value - row.value_mg_dl) >= 0.5:
            changes.update(value_mg_dl=value, original_value=value, original_unit=MG_DL, at_sensor_limit=False)
    if changes:
        Observation.objects.filter(pk=row.pk).update(modified_at=now, **changes)
        schedule_window_refresh(person, (row.effective_at, row.effective_at))
    return 200, {"lastModified": floor_ms(now if changes else row.modified_at)}


def delete(*, person, identifier: str, permanent: bool = False, now: datetime | None = None) -> None:
    """DELETE /entries/{identifier}: the reading becomes entered-in-error (or goes, with
    `permanent=true`); forecasts stop using it either way."""
    row = _found(person, identifier)
    if permanent:
        row.delete()
    else:
        Observation.objects.filter(pk=row.pk).update(
            status=ObservationStatus.ENTERED_IN_ERROR, modified_at=now or timezone.now()
        )
    schedule_window_refresh(person, (row.effective_at, row.effective_at))

