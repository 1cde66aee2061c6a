"""Nightscout API v3 under /ns/api/v3/: what AndroidAPS' NSClientV3 calls, answered as
cgm-remote-monitor's lib/api3 answers it.

AndroidAPS is given `https://<glucast host>/ns` as its Nightscout URL and the person's API v3
access token (data page). It builds `https://<host>/ns/api/v3/...` for every call but asks for
its JWT at `/api/v2/authorization/request/<token>` from the host's root (an absolute path in
its client), so that one route is mounted both under /ns/ and at the site root (config.urls).

Every answer has Nightscout's envelope: `{"status", "result"}` for reads, `{"status",
"identifier", "lastModified", "isDeduplication"?, "deduplicatedIdentifier"?}` for creates,
`{"status", "message"}` for refusals (401 missing or bad JWT, 400 naming the field, 404, 410
for a deleted document). Views authenticate (NightscoutBearerAuthentication: the JWT only, never
glucast's API token, session or the v1 upload secret), parse, call the collection's service
(v3_entries, v3_treatments, v3_unstored) and render. Left out of glucast's OpenAPI schema: it is
Nightscout's protocol.
"""

from __future__ import annotations

from django.db import connection
from django.utils import timezone
from django.utils.http import http_date
from rest_framework import exceptions
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from observations.nightscout import v3_entries, v3_treatments
from observations.nightscout.api import NIGHTSCOUT_API_VERSION, read_json
from observations.nightscout.documents import (
    MSG_BAD_OPERATION,
    V3Error,
    epoch_ms,
    parse_fields,
    parse_history_since,
    parse_limit,
    parse_search,
    usable_identifier,
)
from observations.nightscout.tokens import (
    MSG_MISSING_OR_BAD_TOKEN,
    NightscoutBearerAuthentication,
    exchange_access_token,
)
from observations.nightscout.v3_unstored import UnstoredCollection

API3_VERSION = "3.0.3-alpha"  # the lib/api3 version whose behaviour these answers follow
COLLECTIONS = {
    "entries": v3_entries,
    "treatments": v3_treatments,
    "devicestatus": UnstoredCollection("devicestatus"),
    "profile": UnstoredCollection("profile"),
    "food": UnstoredCollection("food"),
    "settings": UnstoredCollection("settings"),
}
# What a glucast access token may do, per collection, as /status lists it. AndroidAPS uploads
# only when all six read "crud"; what glucast does not store answers as v3_unstored says.
PERMISSIONS = {name: "crud" for name in ("devicestatus", "entries", "food", "profile", "settings", "treatments")}


class NightscoutV3Throttle(UserRateThrottle):
    """Per person (the token's owner); the rate is GLUCAST_NIGHTSCOUT_V3_RATE."""

    scope = "nightscout-v3"


class TokenExchangeThrottle(AnonRateThrottle):
    """Per client address, at the v1 surface's rate (AndroidAPS asks once per JWT, 8 hours)."""

    scope = "nightscout"


def _envelope_error(exc: Exception) -> Response | None:
    """DRF's refusals in Nightscout's shape ({"status", "message"})."""
    if isinstance(exc, V3Error):
        return Response(exc.as_payload(), status=exc.status)
    if isinstance(exc, (exceptions.AuthenticationFailed, exceptions.NotAuthenticated)):
        message = str(exc.detail) if isinstance(exc, exceptions.AuthenticationFailed) else MSG_MISSING_OR_BAD_TOKEN
        return Response({"status": 401, "message": message}, status=401,
                        headers={"WWW-Authenticate": 'Bearer realm="Nightscout API v3"'})
    if isinstance(exc, exceptions.Throttled):
        headers = {"Retry-After": str(int(exc.wait))} if exc.wait else {}
        return Response({"status": 429, "message": f"Too many requests; try again in {int(exc.wait or 60)} s"},
                        status=429, headers=headers)
    if isinstance(exc, exceptions.APIException):
        return Response({"status": exc.status_code, "message": str(exc.detail)}, status=exc.status_code)
    return None


class NightscoutV3View(APIView):
    authentication_classes = [NightscoutBearerAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [NightscoutV3Throttle]
    renderer_classes = [JSONRenderer]
    parser_classes: list = []  # bodies are read (and size-checked) by api.read_json
    schema = None

    def handle_exception(self, exc):
        response = _envelope_error(exc)
        return response if response is not None else super().handle_exception(exc)

    @property
    def person(self):
        return self.request.auth.person

    def body(self):
        document, refusal = read_json(self.request)
        if refusal is not None:
            raise V3Error(refusal.status_code, str(refusal.data.get("detail", "Bad or missing request body")),
                          field=(refusal.data.get("errors") or [{}])[0].get("field", "body"))
        return document


def _storage() -> dict:
    version = connection.pg_version or 0
    return {"storage": "postgresql", "version": f"{version // 10000}.{version % 10000}"}


def _version_info() -> dict:
    return {"version": NIGHTSCOUT_API_VERSION, "apiVersion": API3_VERSION,
            "srvDate": epoch_ms(timezone.now()), "storage": _storage()}


def _ok(result) -> Response:
    return Response({"status": 200, "result": result})


class AuthorizationRequestView(APIView):
    """GET /api/v2/authorization/request/<access token> -> {"token": JWT, "iat", "exp", ...}."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenExchangeThrottle]
    renderer_classes = [JSONRenderer]
    schema = None

    def handle_exception(self, exc):
        response = _envelope_error(exc)
        return response if response is not None else super().handle_exception(exc)

    def get(self, request, access_token: str):
        answer = exchange_access_token(access_token)
        if answer is None:
            # Nightscout's answer for an unknown token (lib/authorization/endpoints.js). Not
            # logged by Django's request logger: its line would carry the presented token.
            refusal = Response({"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}, status=401)
            refusal._has_been_logged = True
            return refusal
        response = Response(answer)
        response["Cache-Control"] = "no-store"
        return response


class VersionView(NightscoutV3View):
    """GET /api/v3/version: public in Nightscout too."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenExchangeThrottle]

    def get(self, request):
        return _ok(_version_info())


class StatusView(NightscoutV3View):
    """GET /api/v3/status: the version and what this token may do per collection."""

    def get(self, request):
        return _ok({**_version_info(), "apiPermissions": PERMISSIONS})


class LastModifiedView(NightscoutV3View):
    """GET /api/v3/lastModified: the newest srvModified per collection that has documents."""

    def get(self, request):
        collections = {}
        for name, collection in COLLECTIONS.items():
            value = collection.last_modified(self.person)
            if value:
                collections[name] = value
        return _ok({"srvDate": epoch_ms(timezone.now()), "collections": collections})


class CollectionView(NightscoutV3View):
    """GET (search) and POST (create) on /api/v3/<collection>."""

    collection = ""

    @property
    def service(self):
        return COLLECTIONS[self.collection]

    def get(self, request):
        return _ok(self.service.search(person=self.person, query=parse_search(request.query_params)))

    def post(self, request):
        code, fields = self.service.create(person=self.person, doc=self.body())
        headers = {}
        if code == 201:
            headers["Location"] = f"{request.path.rstrip('/')}/{fields['identifier']}"
        return Response({"status": code, **fields}, status=code, headers=headers)


class HistoryView(NightscoutV3View):
    """GET /api/v3/<collection>/history[/<lastModified>]: changes since, deleted ones too, with
    ETag W/"<newest srvModified>" (AndroidAPS reads its cursor from it)."""

    collection = ""

    def get(self, request, since: str | None = None):
        since_ms, inclusive = parse_history_since(since, request.META.get("HTTP_LAST_MODIFIED"))
        documents, newest = COLLECTIONS[self.collection].history(
            person=self.person, since_ms=since_ms, inclusive=inclusive, limit=parse_limit(request.query_params),
            fields=parse_fields(request.query_params))
        response = _ok(documents)
        if newest is not None:
            response["ETag"] = f'W/"{newest}"'
            response["Last-Modified"] = http_date(newest / 1000)
        return response


class DocumentView(NightscoutV3View):
    """GET / PATCH / PUT / DELETE /api/v3/<collection>/<identifier>; another person's
    identifier is unknown here (404), as any identifier that does not exist."""

    collection = ""

    @property
    def service(self):
        return COLLECTIONS[self.collection]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not usable_identifier(kwargs.get("identifier")):
            raise V3Error(404)  # no document is ever stored under it (a NUL, say), as Nightscout answers

    def get(self, request, identifier: str):
        return _ok(self.service.read(person=self.person, identifier=identifier,
                                     fields=parse_fields(request.query_params)))

    def patch(self, request, identifier: str):
        code, fields = self.service.update(person=self.person, identifier=identifier, doc=self.body())
        return Response({"status": code, **fields}, status=code)

    def put(self, request, identifier: str):
        code, fields = self.service.update(person=self.person, identifier=identifier, doc=self.body(), replace=True)
        return Response({"status": code, **fields}, status=code)

    def delete(self, request, identifier: str):
        permanent = request.query_params.get("permanent") == "true"
        self.service.delete(person=self.person, identifier=identifier, permanent=permanent)
        return Response({"status": 200})


class UnknownView(NightscoutV3View):
    """Any other /api/v3 path: Nightscout's 404 (after authentication, as Nightscout)."""

    def dispatch_unknown(self, request, *args, **kwargs):
        raise V3Error(404, MSG_BAD_OPERATION)

    get = post = put = patch = delete = dispatch_unknown

