"""Nightscout API v3's document rules, as cgm-remote-monitor's lib/api3 applies them.

One home for what every v3 collection shares: the identifier Nightscout derives, the common
fields a created document must carry (`date`, `utcOffset`, `app`), the fields no update may
change, and the search query (`field$op=value`, `sort`/`sort$desc`, `limit`, `skip`, `fields`).
The messages are Nightscout's own (lib/api3/const.json): AndroidAPS matches some literally (it
retries a create with utcOffset 0 when the answer says "Bad or missing utcOffset field").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from email.utils import parsedate_to_datetime

from observations.validation import ascii_digits, control_characters, finite_number

# uuid v5 namespace made of the 16 bytes of "NightscoutRocks!" (lib/api3/shared/operationTools.js)
NAMESPACE = uuid.UUID(bytes=b"NightscoutRocks!")
MIN_TIMESTAMP = 946684800000  # 2000-01-01, Nightscout's lower bound for `date`
MIN_UTC_OFFSET, MAX_UTC_OFFSET = -1440, 1440
MAX_LIMIT = 1000  # API3_MAX_LIMIT
MAX_IDENTIFIER = 128
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)

MSG_BAD_BODY = "Bad or missing request body"
MSG_BAD_IDENTIFIER = "Bad or missing identifier field"
MSG_BAD_DATE = "Bad or missing date field"
MSG_BAD_UTC = "Bad or missing utcOffset field"
MSG_BAD_APP = "Bad or missing app field"
MSG_BAD_LIMIT = "Parameter limit out of tolerance"
MSG_BAD_SKIP = "Parameter skip out of tolerance"
MSG_SORT_SORT_DESC = "Parameters sort and sort_desc cannot be combined"
MSG_BAD_OPERATOR = "Unsupported filter operator {0}"
MSG_IMMUTABLE = "Field {0} cannot be modified by the client"
MSG_BAD_LAST_MODIFIED = "Bad or missing Last-Modified header/parameter"
MSG_BAD_OPERATION = "Bad operation or collection"

# What no PATCH or PUT may change (lib/api3/generic/update/validate.js).
IMMUTABLE = ("identifier", "date", "utcOffset", "eventType", "device", "app",
             "srvCreated", "subject", "srvModified", "modifiedBy", "isValid")
# The comparisons glucast's searches take, as Django lookups (Nightscout also has in, nin, re).
COMPARISONS = {"eq": "", "gt": "__gt", "gte": "__gte", "lt": "__lt", "lte": "__lte"}
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "re")
RESERVED_PARAMS = ("token", "sort", "sort$desc", "limit", "skip", "fields", "now")


class V3Error(Exception):
    """A refusal in Nightscout's shape: {"status": N, "message": ..., and any `extra`}."""

    def __init__(self, status: int, message: str | None = None, **extra):
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.extra = extra

    def as_payload(self) -> dict:
        payload: dict = {"status": self.status}
        if self.message:
            payload["message"] = self.message
        payload.update(self.extra)
        return payload


def rejected(exc) -> V3Error:
    """glucast's validation refusal (ImportRejected, fields named as the client names them) as
    Nightscout's 400: the first problem in `message` and `field`, up to 20 in `errors`."""
    first = exc.errors[0] if exc.errors else None
    message = f"{first.field}: {first.reason}" if first else exc.message
    return V3Error(400, message, field=first.field if first else "body",
                   errors=[{"field": e.field, "reason": e.reason} for e in exc.errors[:20]])


def is_number(value: object) -> bool:
    return finite_number(value)


def _js_text(value: object) -> str:
    """How JavaScript's string concatenation writes a value (for the identifier's key)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def calculate_identifier(doc: dict) -> str:
    """Nightscout's identifier: uuid v5 of `device_date[_eventType]` (a missing device reads
    "undefined", as in JavaScript)."""
    key = f"{_js_text(doc['device']) if 'device' in doc else 'undefined'}_{_js_text(doc.get('date'))}"
    if doc.get("eventType"):
        key += f"_{_js_text(doc['eventType'])}"
    return str(uuid.uuid5(NAMESPACE, key))


def epoch_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def floor_ms(moment: datetime) -> int:
    """Whole epoch milliseconds, rounded down: srvModified and history cursors (a document
    changed at .4 ms after a cursor is after it, never "at" it)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int | float) -> datetime:
    return datetime.fromtimestamp(value / 1000.0, tz=dt_timezone.utc)


def parse_instant(value: object) -> datetime | None:
    """Epoch ms (number or digits) or an ISO 8601 date-time, as Nightscout's parseToMoment."""
    try:
        if is_number(value):
            return from_ms(value)
        if isinstance(value, str):
            text = value.strip()
            if ascii_digits(text.removeprefix("-")) and len(text) <= 16:
                return from_ms(int(text))
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=dt_timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def normalize_for_create(doc: dict) -> None:
    """Nightscout's parseDate and resolveIdentifier on a document being created, in place:
    `date` from `date` or `created_at` as epoch ms, `utcOffset` from an ISO date's offset
    when missing, then the derived `identifier` when the client sent none."""
    for name in ("date", "created_at"):
        if name not in doc or doc[name] is None:
            continue
        moment = parse_instant(doc[name])
        if moment is None:
            break
        doc["date"] = epoch_ms(moment)
        if "utcOffset" not in doc:
            offset = moment.utcoffset() if isinstance(doc[name], str) else None
            doc["utcOffset"] = int(offset.total_seconds() // 60) if offset else 0
        break
    if not doc.get("identifier"):
        doc["identifier"] = calculate_identifier(doc)


def usable_identifier(identifier) -> bool:
    """Whether `identifier` can name a document: text of at most MAX_IDENTIFIER characters,
    not blank, without control characters (PostgreSQL text cannot hold NUL; none is ever stored)."""
    return (isinstance(identifier, str) and bool(identifier.strip()) and len(identifier) <= MAX_IDENTIFIER
            and control_characters(identifier) is None)


def validate_common(doc: dict, *, patching: bool = False) -> None:
    """lib/api3/shared/operationTools.validateCommon; raises V3Error(400) naming the field."""
    if not patching and not usable_identifier(doc.get("identifier")):
        raise V3Error(400, MSG_BAD_IDENTIFIER, field="identifier")
    if not patching or "date" in doc:
        if not is_number(doc.get("date")) or doc["date"] <= MIN_TIMESTAMP:
            raise V3Error(400, MSG_BAD_DATE, field="date")
    if not patching or "utcOffset" in doc:
        offset = doc.get("utcOffset")
        if not is_number(offset) or not MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET:
            raise V3Error(400, MSG_BAD_UTC, field="utcOffset")
    if not patching or "app" in doc:
        if not isinstance(doc.get("app"), str) or not doc["app"].strip():
            raise V3Error(400, MSG_BAD_APP, field="app")


def check_immutable(doc: dict, stored: dict) -> None:
    """A PATCH or PUT may not change these fields of the stored document (Nightscout's 400)."""
    for name in IMMUTABLE:
        if name in doc and doc[name] is not None and name in stored and doc[name] != stored[name]:
            raise V3Error(400, MSG_IMMUTABLE.format(name), field=name)


def require_object(body: object) -> dict:
    if not isinstance(body, dict) or not body:
        raise V3Error(400, MSG_BAD_BODY, field="body")
    return body


# --- Reading ------------------------------------------------------------------------------------


@dataclass
class Filter:
    field: str
    operator: str
    value: object


@dataclass
class SearchQuery:
    filters: list[Filter] = field(default_factory=list)
    sort: str | None = None
    descending: bool = False
    limit: int = MAX_LIMIT
    skip: int = 0
    fields: list[str] | None = None  # None: every field


def parse_limit(query) -> int:
    if "limit" not in query:
        return MAX_LIMIT
    text = query["limit"]
    if not ascii_digits(text) or len(text) > 9 or not 0 < int(text) <= MAX_LIMIT:
        raise V3Error(400, MSG_BAD_LIMIT, field="limit")
    return int(text)


def parse_fields(query) -> list[str] | None:
    text = query.get("fields", "")
    if not text or text == "_all":
        return None
    return [name.strip() for name in text.split(",") if name.strip()][:50]


def parse_search(query) -> SearchQuery:
    """The search operation's query string (lib/api3/generic/search/input.js)."""
    search = SearchQuery(limit=parse_limit(query), fields=parse_fields(query))
    if "sort" in query and "sort$desc" in query:
        raise V3Error(400, MSG_SORT_SORT_DESC, field="sort")
    if "sort$desc" in query:
        search.sort, search.descending = query["sort$desc"], True
    elif "sort" in query:
        search.sort = query["sort"]
    if "skip" in query:
        if not ascii_digits(query["skip"]) or len(query["skip"]) > 9:
            raise V3Error(400, MSG_BAD_SKIP, field="skip")
        search.skip = int(query["skip"])
    for param in query:
        if param in RESERVED_PARAMS:
            continue
        name, operator = param, "eq"
        if "$" in param:
            name, _, operator = param.rpartition("$")
            if operator not in OPERATORS:
                raise V3Error(400, MSG_BAD_OPERATOR.format(operator[:20]), field=param[:60])
        problem = control_characters(query[param])
        if problem:
            raise V3Error(400, f"{param[:60]}: {problem}", field=param[:60])
        search.filters.append(Filter(name, operator, query[param]))
    return search


def project(doc: dict, fields: list[str] | None) -> dict:
    """The `fields` projection (identifier always kept, as Nightscout's FieldsProjector)."""
    if fields is None:
        return doc
    return {name: value for name, value in doc.items() if name in fields or name == "identifier"}


def parse_history_since(text: str | None, header: str | None) -> tuple[int, bool]:
    """The history cursor: the path's epoch ms (exclusive) or a Last-Modified header
    (inclusive, whole seconds). Returns (epoch ms, inclusive)."""
    if text is not None:
        moment = parse_instant(text)
        if moment is None:
            raise V3Error(400, MSG_BAD_LAST_MODIFIED, field="lastModified")
        return _usable_cursor(epoch_ms(moment), False, field="lastModified")
    if header:
        try:
            moment = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt_timezone.utc)
            return _usable_cursor(epoch_ms(moment.replace(microsecond=0)), True, field="Last-Modified")
    raise V3Error(400, MSG_BAD_LAST_MODIFIED, field="Last-Modified")


def _usable_cursor(since_ms: int, inclusive: bool, *, field: str) -> tuple[int, bool]:
    """The cursor, if history_page can read rows from it: an instant in year 1 or 9999 with an
    offset (0001-01-01T00:00:00+14:00) lies outside UTC's datetimes, and was a ValueError (a 500)."""
    try:
        from_ms(since_ms if inclusive else since_ms + 1)
    except (ValueError, OverflowError, OSError):
        raise V3Error(400, MSG_BAD_LAST_MODIFIED, field=field) from None
    return since_ms, inclusive


# A full history page never ends inside one millisecond (the next cursor would skip the rest of
# it): it stops before that millisecond, unless the whole page is one millisecond (one bulk
# import stamps its rows alike), then it takes that millisecond whole, up to this bound.
MAX_HISTORY_BURST = 10_000


def history_page(rows, *, since_ms: int, inclusive: bool, limit: int) -> list:
    """One page of `history` from rows annotated with `srv_modified`, oldest change first.

    Exclusive cursors are whole milliseconds: a row is after `since_ms` when it was changed in a
    later millisecond, so a client that passes back the page's newest srvModified sees no row
    twice (AndroidAPS loops while a page has rows)."""
    start = from_ms(since_ms if inclusive else since_ms + 1)
    ordered = rows.filter(srv_modified__gte=start).order_by("srv_modified", "pk")
    page = list(ordered[:limit])
    if len(page) < limit or not page:
        return page
    last = floor_ms(page[-1].srv_modified)
    head = [row for row in page if floor_ms(row.srv_modified) < last]
    if head:
        return head
    return list(ordered.filter(srv_modified__lt=from_ms(last + 1))[:MAX_HISTORY_BURST])
