"""The Nightscout REST API v1 surface under /ns/: what xDrip+, AndroidAPS and Loop talk to.

A person enters https://<glucast host>/ns/ as their Nightscout URL and their glucast upload
secret as the API secret. Every view here authenticates only with that secret
(NightscoutSecretAuthentication) and sees only its person's readings; it is CSRF-exempt like
every token-authenticated API view (DRF views are, and no session authentication runs here).
Left out of the OpenAPI schema: it is Nightscout's protocol, documented by Nightscout.

Treatments are stored where glucast models them (insulin boluses, temporary basals and
carbohydrates: observations.nightscout.treatments maps what Loop, AndroidAPS and xDrip+ send);
the rest (notes, targets, device events, profile switches) is skipped with its reason in the
answer. They are inputs of the forecast only: glucast never suggests a dose. Device status is
accepted (so uploaders do not retry it forever) and counted, but not stored.

POST answers are what Nightscout answers: a JSON array with one object per posted item, in
order (Loop treats anything else, or another count, as a failed upload and re-queues it
forever). Each object says what became of its item (`status`: stored, skipped or not stored,
with a `reason`); the counts are in X-Glucast-Received / -Created / -Duplicates / -Skipped
headers. No `_id` is invented: Loop records a missing one as "NA", which is the truth for items
glucast did not store.
"""

from __future__ import annotations

import zlib

from django.conf import settings
from django.utils import timezone
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from observations.nightscout.secrets import NightscoutSecretAuthentication
from observations.nightscout.services import (
    UPLOAD,
    entries_for,
    from_epoch_ms,
    store_entries,
    store_treatments_document,
    treatments_for,
)
from observations.validation import ImportRejected, JSONRefused, load_json

# Nightscout's compatibility level these answers follow (xDrip+ refuses 0.6-0.8 servers).
NIGHTSCOUT_API_VERSION = "15.0.2"
DEFAULT_COUNT = 10  # Nightscout's default
FIND_OPERATORS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


class NightscoutThrottle(UserRateThrottle):
    """Per person (the secret's owner); the rate is GLUCAST_NIGHTSCOUT_RATE."""

    scope = "nightscout"


class NightscoutView(APIView):
    authentication_classes = [NightscoutSecretAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [NightscoutThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes: list = []  # the body is read (and size-checked) by read_json
    schema = None  # not part of glucast's own OpenAPI schema

    @property
    def person(self):
        return self.request.auth.person


def _bad_request(detail: str, field: str = "body") -> Response:
    return Response(ImportRejected.file_error(detail, field=field).as_payload(), status=status.HTTP_400_BAD_REQUEST)


def read_json(request):
    """The request body as JSON, refused (413) above GLUCAST_NIGHTSCOUT_MAX_BODY_BYTES before it is
    read, gzip bodies inflated with the same cap. Returns (document, None) or (None, Response)."""
    limit = settings.GLUCAST_NIGHTSCOUT_MAX_BODY_BYTES
    too_large = Response(
        {"detail": f"The body is larger than {limit // 1024} KiB; send fewer entries per request."},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None, _bad_request("Content-Length is not a number", field="Content-Length")
    if length > limit:
        return None, too_large
    raw = request.body
    if request.META.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            return None, _bad_request("the body is not valid gzip")
        if len(raw) > limit or inflater.unconsumed_tail:
            return None, too_large
    if not raw.strip():
        return None, _bad_request("the body is empty; send a Nightscout entry or a list of entries")
    # glucast's one JSON rule: bounded depth, no lone surrogates (text that neither PostgreSQL nor
    # an answer can hold). NaN/Infinity pass: the entry and treatment mappers refuse non-finite
    # numbers naming the field, and the fields they do not read are never stored.
    try:
        return load_json(raw, allow_constants=True), None
    except JSONRefused as exc:
        return None, _bad_request(f"the body is refused: {exc}", field=exc.field)
    except ValueError as exc:  # UnicodeDecodeError included
        return None, _bad_request(f"the body is not valid JSON: {str(exc)[:120]}")


def _date_bounds(query, *, fields=("date", "dateString"), extra="find[type]=sgv") -> tuple[dict, list[str]]:
    """find[date][$gt]=MS style filters (on `fields`) -> ({"gt": instant}, errors)."""
    bounds, errors = {}, []
    for key, value in query.items():
        if not key.startswith("find["):
            continue
        parts = key[len("find[") :].rstrip("]").split("][")
        if parts == ["type"] and value == "sgv" and extra:
            continue
        if len(parts) != 2 or parts[0] not in fields or parts[1] not in FIND_OPERATORS:
            also = f" (and {extra})" if extra else ""
            errors.append(f"{key}: only find[{fields[0]}][$gt|$gte|$lt|$lte]{also} are supported")
            continue
        try:
            bounds[FIND_OPERATORS[parts[1]]] = from_epoch_ms(value)
        except (ValueError, OverflowError, OSError) as exc:
            errors.append(f"{key}: {exc}")
    return bounds, errors


def _read_query(query, **find):
    """count and find[...] of a GET -> (count, bounds, None) or (None, None, a 400)."""
    errors = []
    count = DEFAULT_COUNT
    if "count" in query:
        try:
            count = int(query["count"])
            if count < 0:
                raise ValueError
        except ValueError:
            errors.append("count: must be a non-negative whole number")
    count = min(count, settings.GLUCAST_NIGHTSCOUT_MAX_COUNT)
    bounds, find_errors = _date_bounds(query, **find)
    errors += find_errors
    if errors:
        return None, None, Response({"detail": "Invalid query.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    return count, bounds, None


class EntriesView(NightscoutView):
    """GET the person's sensor readings as Nightscout entries; POST one entry or a list."""

    def get(self, request, kind: str | None = None):
        if kind not in (None, "sgv"):
            return Response([])  # glucast stores no mbg/cal entries
        count, bounds, refusal = _read_query(request.query_params)
        if refusal is not None:
            return refusal
        return Response(entries_for(self.person, count=count, bounds=bounds))

    def post(self, request, kind: str | None = None):
        document, refusal = read_json(request)
        if refusal is not None:
            return refusal
        try:
            summary = store_entries(
                self.person, document, channel=UPLOAD, max_entries=settings.GLUCAST_NIGHTSCOUT_MAX_ENTRIES
            )
        except ImportRejected as exc:
            return Response(exc.as_payload(), status=status.HTTP_400_BAD_REQUEST)
        entries = document if isinstance(document, list) else [document]
        answer = []
        for position, entry in enumerate(entries, start=1):
            reason = summary["skipped_at"].get(position)
            item = {key: entry.get(key) for key in ("type", "date", "sgv") if key in entry}
            item.update({"status": "skipped", "reason": reason} if reason else {"status": "stored"})
            answer.append(item)
        return Response(answer, status=status.HTTP_200_OK, headers=_summary_headers(summary))


def _summary_headers(summary: dict) -> dict:
    return {
        "X-Glucast-Received": str(summary["received"]),
        "X-Glucast-Created": str(summary["created"]),
        "X-Glucast-Duplicates": str(summary["duplicates"]),
        "X-Glucast-Skipped": str(summary["skipped"]),
    }


class TreatmentsView(NightscoutView):
    """POST (or PUT) one treatment or a list: insulin, carbs and temporary basals are stored, the
    rest skipped with its reason; one answer object per posted treatment, in order. GET them
    back, newest first (count, find[created_at][$gt|$gte|$lt|$lte] as ISO or epoch ms)."""

    def get(self, request):
        count, bounds, refusal = _read_query(
            request.query_params, fields=("created_at", "date", "mills"), extra=""
        )
        if refusal is not None:
            return refusal
        return Response(treatments_for(self.person, count=count, bounds=bounds))

    def post(self, request):
        document, refusal = read_json(request)
        if refusal is not None:
            return refusal
        try:
            summary = store_treatments_document(
                self.person, document, channel=UPLOAD, max_items=settings.GLUCAST_NIGHTSCOUT_MAX_ENTRIES
            )
        except ImportRejected as exc:
            return Response(exc.as_payload(), status=status.HTTP_400_BAD_REQUEST)
        items = document if isinstance(document, list) else [document]
        answer = []
        for position, item in enumerate(items, start=1):
            shown = {key: item.get(key) for key in ("eventType", "created_at", "date") if key in item}
            if position in summary["skipped_at"]:
                shown.update(status="skipped", reason=summary["skipped_at"][position])
            elif position in summary["withdrawn_at"]:
                shown.update(status="withdrawn")
            elif position in summary["cancelled_at"]:
                shown.update(status="stored", stored_as=["end of temp_basal"])
            else:
                shown.update(status="stored", stored_as=summary["kinds_at"].get(position, []))
            answer.append(shown)
        headers = {**_summary_headers(summary), "X-Glucast-Updated": str(summary["updated"])}
        return Response(answer, status=status.HTTP_200_OK, headers=headers)

    def put(self, request):
        return self.post(request)


class NotStoredView(NightscoutView):
    """POST devicestatus: accepted and counted, never stored (see the module doc)."""

    collection = ""

    def post(self, request):
        document, refusal = read_json(request)
        if refusal is not None:
            return refusal
        items = document if isinstance(document, list) else [document]
        reason = (f"glucast does not store Nightscout {self.collection}: it forecasts from readings and "
                  "recorded treatments, for information, never for dosing")
        answer = [{"status": "not stored", "reason": reason} for _ in items]
        return Response(answer, headers={"X-Glucast-Received": str(len(items)), "X-Glucast-Stored": "0"})

    def put(self, request):
        return self.post(request)

    def get(self, request):
        return Response([])


class StatusView(NightscoutView):
    """What uploaders read to test a connection (xDrip+ reads `version`, others `apiEnabled`,
    `settings.units`, `careportalEnabled`)."""

    def get(self, request):
        now = timezone.now()
        person = self.person
        return Response(
            {
                "status": "ok",
                "name": "glucast",
                "version": NIGHTSCOUT_API_VERSION,
                "serverTime": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "serverTimeEpoch": int(now.timestamp() * 1000),
                "apiEnabled": True,
                "careportalEnabled": False,
                "boluscalcEnabled": False,
                "settings": {
                    "units": "mmol" if person.preferred_unit == "mmol/L" else "mg/dl",
                    "timeFormat": 24,
                    "customTitle": "glucast",
                    "enable": [],
                    "authDefaultRoles": "denied",
                },
                "extendedSettings": {},
                "authorized": None,
            }
        )


class VerifyAuthView(NightscoutView):
    """Nightscout's /api/v1/verifyauth: the secret is good and may write entries."""

    def get(self, request):
        return Response(
            {"status": 200, "message": {"canRead": True, "canWrite": True, "isAdmin": False,
                                        "message": "OK", "rolefound": "FOUND", "permissions": "DEFAULT"}}
        )
