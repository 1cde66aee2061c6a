"""The web entry point with a lean path for token-authenticated API calls.

Why: the site's middleware serves browsers — sessions, CSRF tokens, the session login, flash
messages, static files. A call with `Authorization: Token …` to /api/ uses none of them: DRF
authenticates it by its token and checks CSRF itself for the session-authenticated calls that
need it. Measured through gunicorn (docs/figures.md, "Forecast latency"), the browser-only middleware
and the extra queries cost a noticeable part of every API call.

So `application` routes each request: a token call to /api/ goes through a Django handler
built with settings.TOKEN_API_MIDDLEWARE (settings.MIDDLEWARE without the browser-only
classes, derived there, so middleware added later is on both paths), everything else through
the full stack. Nothing is checked less: authentication, permissions, throttles, validation,
security headers, the language of the answer and the prediction log are the same on both paths.
"""

from __future__ import annotations

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler


def is_token_api_call(environ) -> bool:
    return environ.get("PATH_INFO", "").startswith("/api/") and environ.get(
        "HTTP_AUTHORIZATION", ""
    ).startswith("Token ")


class TokenAPIHandler(WSGIHandler):
    """Django's WSGI handler whose middleware chain is settings.TOKEN_API_MIDDLEWARE."""

    def load_middleware(self, is_async=False):
        # BaseHandler builds the chain from settings.MIDDLEWARE; this runs once, when the
        # process starts, before any request is served.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.TOKEN_API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class RoutingApplication:
    """The WSGI application: token API calls take the lean handler, the rest the full one."""

    def __init__(self, full: WSGIHandler):
        self.full = full
        self.lean = TokenAPIHandler()

    def __call__(self, environ, start_response):
        handler = self.lean if is_token_api_call(environ) else self.full
        return handler(environ, start_response)
