"""The lean path of token API calls (config/lean_wsgi.py), through the real WSGI application:
the same answers and checks as the full stack, and browsers keep sessions and CSRF."""

import io
import json
import sys

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from config.wsgi import application
from predictions.models import PredictionLog
from tests.predictions.conftest import recent_readings, store_readings

pytestmark = pytest.mark.django_db(transaction=True)


def call(method, path, *, token=None, body=None, **headers):
    data = b"" if body is None else json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "HTTP_HOST": "testserver",
        "wsgi.input": io.BytesIO(data), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(data)), "CONTENT_TYPE": "application/json",
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Token {token}"
    started = []
    chunks = application(environ, lambda status, response_headers: started.append((status, dict(response_headers))))
    payload = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    status, response_headers = started[0]
    return int(status.split()[0]), response_headers, (json.loads(payload) if payload else None)


def test_browser_only_middleware_is_left_out_and_nothing_else():
    lean = set(settings.TOKEN_API_MIDDLEWARE)
    assert not lean & settings.BROWSER_ONLY_MIDDLEWARE
    assert lean | settings.BROWSER_ONLY_MIDDLEWARE == set(settings.MIDDLEWARE)
    assert "django.middleware.locale.LocaleMiddleware" in lean  # answers in the caller's language


def test_token_calls_are_answered_with_the_same_checks(person, settings, one_rate_window):
    settings.GLUCAST_FORECAST_RATE = "2/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"forecast": "2/min"}}
    token = Token.objects.create(user=person.owner).key
    store_readings(person, recent_readings(hours=4, seed=2))

    status, headers, body = call("GET", "/api/me/", token=token)
    assert status == 200 and headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in headers

    status, _, body = call("POST", "/api/predictions/glucose/", token=token, body={"horizons": [30]},
                           accept_language="de")
    assert status == 201 and body["disclaimer"]
    assert PredictionLog.objects.get(pk=body["prediction_id"]).person_id == person.pk
    assert "Prognose" in body["disclaimer"]  # German, as asked

    status, _, body = call("POST", "/api/predictions/glucose/", token=token, body={"horizons": [7]})
    assert status == 400 and "horizons" in json.dumps(body)
    status, _, _ = call("POST", "/api/predictions/glucose/", token=token, body={})
    assert status == 429  # the throttle counts on the lean path too

    assert call("GET", "/api/me/", token="not-a-token")[0] == 401
    assert call("GET", "/api/me/")[0] in (401, 403)


def test_a_deleted_or_rotated_token_stops_working_at_once(person):
    token = Token.objects.create(user=person.owner)
    assert call("GET", "/api/me/", token=token.key)[0] == 200
    token.delete()
    assert call("GET", "/api/me/", token=token.key)[0] == 401
    person.owner.is_active = False
    person.owner.save()
    fresh = Token.objects.create(user=person.owner)
    assert call("GET", "/api/me/", token=fresh.key)[0] == 401


def test_browsers_keep_sessions_and_csrf_on_the_api(person):
    person.owner.save()  # keep the session's auth hash valid after the factory's set_password
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(person.owner)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    assert call("GET", "/api/me/", cookie=cookie)[0] == 200  # the session authenticates
    status, _, body = call("POST", "/api/predictions/glucose/", cookie=cookie, body={})
    assert status == 403 and "CSRF" in json.dumps(body)  # no CSRF token: refused
