"""Nightscout API v3 `treatments` over glucast's Treatment rows.

Every write goes through treatments-data's Nightscout path (services.store_treatments_document:
the one eventType mapping in observations.nightscout.treatments, the one treatment validation,
the idempotent insert), so API v1 and v3 store a treatment alike. What v3 adds:

- `identifier`: the client's, or Nightscout's derived one (uuid v5 of `device_date_eventType`;
  AndroidAPS sends no device, so `undefined_<date>_<eventType>`). One document may give several
  rows (insulin and carbs), stored as `<identifier>/<row kind>`; the document is their group.
- create answers 201 for a new document, 200 with `isDeduplication: true` for one whose
  identifier is stored (Nightscout's deduplication on device, date and eventType), and 200 with
  `stored: false` and the reason for what glucast does not keep (temporary targets, notes,
  profile switches, bolus wizard records without amounts...), so AndroidAPS does not resend it.
- PATCH / PUT: the stored document with the client's changes is stored again through the same
  path (AndroidAPS shortens a cancelled temporary basal this way), in one transaction with the
  old rows' removal; a change that makes it invalid is a 400 and changes nothing. Nightscout's
  immutable fields (date, eventType, utcOffset, ...) may not change.
- DELETE withdraws the rows (is_valid false: kept for `history`, never a model input).
- listings (search, history, lastModified) serve only treatments that came in over API v3:
  AndroidAPS reads treatments back and, on a full sync or with "accept insulin/carbs" on,
  would insert other apps' or files' insulin and carbs as its own; glucast must never be a
  source of dosing data. Its own records come back under the identifiers it was given, which
  it already has.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from observations.models import Treatment
from observations.nightscout.documents import (
    MSG_BAD_IDENTIFIER,
    COMPARISONS,
    SearchQuery,
    V3Error,
    check_immutable,
    epoch_ms,
    floor_ms,
    history_page,
    normalize_for_create,
    parse_instant,
    project,
    rejected,
    require_object,
    validate_common,
)
from observations.nightscout.services import NIGHTSCOUT_KINDS, V3_UPLOAD, as_treatment, store_treatments_document
from observations.nightscout.treatments import ROW_KINDS, row_identifiers
from observations.treatments.services import withdraw_treatments
from observations.validation import ImportRejected

_SORTS = {"created_at": "effective_at", "date": "effective_at", "srvModified": "modified_at", "srvCreated": "created_at"}
_FILTERS = {"created_at": "effective_at", "date": "effective_at", "srvModified": "modified_at", "srvCreated": "created_at"}
# Kept from the client's document (client_fields) and given back as it sent them.
_CLIENT_BACK = ("eventType", "app", "utcOffset", "enteredBy", "type", "pumpId", "pumpType", "pumpSerial", "endId")


def base_identifier(source_identifier: str) -> str:
    """The document's identifier from a row's `<identifier>/<row kind>`."""
    head, _, tail = source_identifier.rpartition("/")
    return head if head and tail in ROW_KINDS else source_identifier


def _rows(person):
    return Treatment.objects.for_person(person)


def _served(person):
    return _rows(person).filter(source=V3_UPLOAD, kind__in=NIGHTSCOUT_KINDS)


def _group(person, identifier: str) -> list[Treatment]:
    return list(_rows(person).filter(source_identifier__in=row_identifiers(identifier)).order_by("pk"))


def as_document(rows: list[Treatment], *, tz) -> dict:
    """One document's rows as an API v3 treatment (API v1's shape, the client's own fields back)."""
    doc: dict = {}
    for row in rows:
        doc.update(as_treatment(row))
    first = rows[0]
    for name in ("_id", "mills"):
        doc.pop(name, None)
    client = first.client_fields or {}
    for name in _CLIENT_BACK:
        if name in client:
            doc[name] = client[name]
    if client.get("enteredBy") is None:
        doc.pop("enteredBy", None)
    if "utcOffset" not in doc:
        offset = first.effective_at.astimezone(tz).utcoffset()
        doc["utcOffset"] = int(offset.total_seconds() // 60) if offset else 0
    if first.device:
        doc["device"] = first.device
    doc.update(
        identifier=base_identifier(first.source_identifier),
        srvCreated=floor_ms(min(row.created_at for row in rows)),
        srvModified=floor_ms(max(row.modified_at for row in rows)),
    )
    if not any(row.is_valid for row in rows):
        doc["isValid"] = False
    return doc


def _documents(rows, *, tz, fields) -> list[dict]:
    """Rows in order -> one document per identifier, in the order of its first row."""
    groups: dict[str, list[Treatment]] = {}
    for row in rows:
        groups.setdefault(base_identifier(row.source_identifier), []).append(row)
    return [project(as_document(group, tz=tz), fields) for group in groups.values()]


def _answer_for(summary: dict, identifier: str, person, now: datetime) -> tuple[int, dict]:
    fields = {"identifier": identifier}
    if 1 in summary["withdrawn_at"]:
        return 200, {**fields, "isDeduplication": False, "lastModified": epoch_ms(now), "stored": False,
                     "reason": "withdrawn: the document is marked deleted (isValid false)"}
    if 1 in summary["cancelled_at"]:
        return 200, {**fields, "isDeduplication": False, "lastModified": epoch_ms(now), "stored": False,
                     "reason": "a temporary basal of duration 0: the running one was ended then"}
    if 1 in summary["skipped_at"]:
        return 200, {**fields, "isDeduplication": False, "lastModified": epoch_ms(now), "stored": False,
                     "reason": f"not stored: {summary['skipped_at'][1]}"}
    modified = _rows(person).filter(source_identifier__in=row_identifiers(identifier)).aggregate(m=Max("modified_at"))["m"]
    last = floor_ms(modified) if modified else epoch_ms(now)
    if summary["created"]:
        return 201, {**fields, "lastModified": last}
    return 200, {**fields, "isDeduplication": True, "lastModified": last}


def create(*, person, doc: object, now: datetime | None = None) -> tuple[int, dict]:
    """POST /treatments: (HTTP status, the answer's top-level fields); V3Error when refused."""
    doc = dict(require_object(doc))
    doc.pop("_id", None)
    normalize_for_create(doc)
    validate_common(doc)
    now = now or timezone.now()
    try:
        summary = store_treatments_document(person, doc, channel=V3_UPLOAD, now=now)
    except ImportRejected as exc:
        raise rejected(exc) from None
    return _answer_for(summary, doc["identifier"], person, now)


def read(*, person, identifier: str, fields=None) -> dict:
    rows = _group(person, identifier)
    if not rows:
        raise V3Error(404)
    if not any(row.is_valid for row in rows):
        raise V3Error(410)
    return project(as_document(rows, tz=person.tz), fields)


def search(*, person, query: SearchQuery) -> list[dict]:
    """GET /treatments (AndroidAPS: `?sort=created_at&created_at$gt=<ISO>&limit=500`)."""
    rows = _served(person).usable()
    for flt in query.filters:
        if flt.field == "identifier" and flt.operator == "eq":
            rows = rows.filter(source_identifier__in=row_identifiers(flt.value[:128]))
            continue
        if flt.field == "eventType" and flt.operator == "eq":
            rows = rows.filter(client_fields__eventType=flt.value[:128])
            continue
        column = _FILTERS.get(flt.field)
        if column is None or flt.operator not in COMPARISONS:
            raise V3Error(400, f"{flt.field}${flt.operator}: filters on created_at, date, srvModified and srvCreated "
                               "(eq, gt, gte, lt, lte), identifier and eventType (eq) are supported",
                          field=flt.field[:60])
        moment = parse_instant(flt.value)
        if moment is None:
            raise V3Error(400, f"{flt.field}: {flt.value[:40]!r} is neither epoch milliseconds nor an ISO date-time",
                          field=flt.field)
        rows = rows.filter(**{f"{column}{COMPARISONS[flt.operator]}": moment})
    if query.sort is not None and query.sort not in _SORTS:
        raise V3Error(400, f"sort: {query.sort[:40]!r} cannot be sorted on; use created_at, date, srvModified or "
                           "srvCreated", field="sort")
    column = _SORTS.get(query.sort or "created_at")
    rows = rows.order_by(f"-{column}" if query.descending else column, "-pk" if query.descending else "pk")
    return _documents(rows[query.skip : query.skip + query.limit], tz=person.tz, fields=query.fields)


def history(*, person, since_ms: int, inclusive: bool, limit: int, fields=None) -> tuple[list[dict], int | None]:
    """GET /treatments/history/{ms}: documents changed after `since_ms` (withdrawn ones too)."""
    rows = _served(person).annotate(srv_modified=F("modified_at"))
    page = history_page(rows, since_ms=since_ms, inclusive=inclusive, limit=limit)
    newest = max((floor_ms(row.modified_at) for row in page), default=None)
    return _documents(page, tz=person.tz, fields=fields), newest


def last_modified(person) -> int | None:
    value = _served(person).aggregate(m=Max("modified_at"))["m"]
    return floor_ms(value) if value else None


def update(*, person, identifier: str, doc: object, replace: bool = False, now: datetime | None = None) -> tuple[int, dict]:
    """PATCH (or PUT, `replace`: every common field required) /treatments/{identifier}."""
    doc = dict(require_object(doc))
    now = now or timezone.now()
    rows = _group(person, identifier)
    if not rows:  # as for entries: PUT replaces, it does not create (see v3_entries.update)
        raise V3Error(404)
    if not any(row.is_valid for row in rows):
        raise V3Error(410)
    stored = as_document(rows, tz=person.tz)
    if doc.get("identifier", identifier) != identifier:
        raise V3Error(400, MSG_BAD_IDENTIFIER, field="identifier")
    check_immutable(doc, stored)
    # PUT carries the whole document (date, utcOffset, app), as Nightscout requires; PATCH a part.
    validate_common({"identifier": identifier, **doc} if replace else doc, patching=not replace)
    merged = {**stored, **doc}
    if "duration" in doc and "durationInMilliseconds" not in doc:
        merged.pop("durationInMilliseconds", None)  # the client's new minutes, not the stored milliseconds
    for name in ("srvCreated", "srvModified", "isValid"):
        merged.pop(name, None)
    created_at = min(row.created_at for row in rows)
    with transaction.atomic():
        _rows(person).filter(pk__in=[row.pk for row in rows]).delete()
        try:
            summary = store_treatments_document(person, merged, channel=V3_UPLOAD, now=now)
        except ImportRejected as exc:  # leaving the block undoes the removal: nothing changed
            raise rejected(exc) from None
        # Nightscout keeps srvCreated across updates.
        _rows(person).filter(source_identifier__in=row_identifiers(identifier)).update(created_at=created_at)
    _, fields = _answer_for(summary, identifier, person, now)
    fields.pop("identifier", None)
    fields.pop("isDeduplication", None)
    return 200, fields


def delete(*, person, identifier: str, permanent: bool = False, now=None) -> None:
    rows = _group(person, identifier)
    if not rows:
        raise V3Error(404)
    if permanent:
        _rows(person).filter(pk__in=[row.pk for row in rows]).delete()
    else:
        withdraw_treatments(person=person, identifiers=row_identifiers(identifier))

