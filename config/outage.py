"""Honest answers while PostgreSQL is unreachable (a restart, a failover): 503 with Retry-After —
JSON for the API, a plain page for people — instead of a crash page.

Django turns an exception in any layer (a view, DRF's authentication, the session middleware
saving on the way out) into a 500 response where it happens, sending `got_request_exception`
first. The receiver here marks the request when the exception is a database connection error;
`DatabaseOutageMiddleware`, outermost, replaces the 500 of a marked request with the 503. The
broken connection is closed at the end of the request (Django closes unusable connections), so
the first request after the database is back connects afresh and succeeds.
"""

from __future__ import annotations

import sys

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpResponse, JsonResponse

RETRY_AFTER_S = 5
_OUTAGE_FLAG = "_glucast_database_unreachable"
_API_MESSAGE = "The database is unreachable for a moment; nothing was changed. Try again in a few seconds."
_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>glucast: back in a moment</title>"
    "<h1>Back in a moment</h1><p>glucast cannot reach its database right now (a restart or "
    "maintenance). Nothing was changed. Please try again in a few seconds.</p></html>"
)


def database_unreachable(exc: BaseException | None) -> bool:
    """A connection-level database error (refused, dropped, closed), not a bad query."""
    while exc is not None:
        if isinstance(exc, (OperationalError, InterfaceError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@receiver(got_request_exception, dispatch_uid="glucast-database-outage")
def _mark_outage(sender, request=None, **kwargs):
    if request is not None and database_unreachable(sys.exc_info()[1]):
        setattr(request, _OUTAGE_FLAG, True)


def outage_response(request) -> HttpResponse:
    wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
    if wants_json:
        response = JsonResponse({"code": "database_unavailable", "detail": _API_MESSAGE}, status=503)
    else:
        response = HttpResponse(_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseOutageMiddleware:
    """Outermost: a request that failed because the database is unreachable answers 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            response = self.get_response(request)
        except (OperationalError, InterfaceError):  # raised past Django's own conversion
            return outage_response(request)
        if getattr(request, _OUTAGE_FLAG, False) and response.status_code >= 500:
            return outage_response(request)
        return response
