"""Bounded request bodies: what any request may cost before a view sees it.

- JSON bodies (every API endpoint, DEFAULT_PARSER_CLASSES): DRF reads the stream itself, so
  Django's DATA_UPLOAD_MAX_MEMORY_SIZE never applies. `BoundedJSONParser` refuses a declared
  Content-Length above GLUCAST_MAX_JSON_BYTES without reading, reads at most one byte more than
  the limit otherwise (413 either way), and decodes with `validation.load_json` (no NaN/Infinity,
  depth-limited: 100,000 nested brackets used to end in a RecursionError, a 500; no lone UTF-16
  surrogates, which no UTF-8 holds: stored or echoed in a refusal, they were a 500).
- Rates (`SettingsRateThrottle`): forecasts, imports and training requests are counted per
  user with one statement in PostgreSQL (or Redis with GLUCAST_REDIS_URL), shared by every
  process and machine (persons.throttling), so a limit means the same with 1 or 20 workers.
- File uploads (API and pages): `BoundedUploadHandler` counts a file's bytes as they stream in
  and skips the rest of a file past GLUCAST_MAX_UPLOAD_BYTES (read and discarded, never held);
  the view then answers 413 (`upload_refused`). Other form fields (the CSRF token) still arrive.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from observations.fhir import FHIR_JSON
from observations.validation import load_json
from persons.throttling import SharedRateThrottle

_TOO_LARGE_FLAG = "glucast_upload_too_large"


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, limit: int):
        super().__init__(f"The request body is larger than {limit} bytes; send less per request.")


class BoundedJSONParser(JSONParser):
    """JSONParser with a size limit (413), a depth limit and strict numbers (400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.GLUCAST_MAX_JSON_BYTES
        request = parser_context.get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise RequestTooLarge(limit)
        if stream is None:
            raise ParseError("JSON parse error - empty body")
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise RequestTooLarge(limit)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError(f"JSON parse error - the body is not {encoding} text") from None
        try:
            return load_json(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


class BoundedFHIRJSONParser(BoundedJSONParser):
    media_type = FHIR_JSON


class SettingsRateThrottle(SharedRateThrottle):
    """The shared per-user rate (persons.throttling: read when a request comes, so a changed
    GLUCAST_FORECAST_RATE, ..._IMPORT_RATE, ..._TRAIN_RATE or a test's override takes effect;
    counted with one statement in PostgreSQL or Redis). Only POST is counted: reading one's own
    data is not what the rates protect."""

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


def page_rate_exceeded(request, scope: str) -> bool:
    """The same per-user rate for a page's POST (the web upload, "retrain") as for the API."""
    return not SettingsRateThrottle().allow_request(request, SimpleNamespace(throttle_scope=scope))


class BoundedUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: passes chunks on and stops a file at the size limit."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.GLUCAST_MAX_UPLOAD_BYTES:
            if self.request is not None:
                setattr(self.request, _TOO_LARGE_FLAG, True)
            raise SkipFile
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler (memory or temporary file) makes the file


def upload_refused(request) -> bool:
    """Whether an uploaded file was cut off at GLUCAST_MAX_UPLOAD_BYTES (DRF or Django request)."""
    return bool(getattr(getattr(request, "_request", request), _TOO_LARGE_FLAG, False))


def upload_too_large_message() -> str:
    limit = settings.GLUCAST_MAX_UPLOAD_BYTES
    shown = f"{limit / 1_048_576:.0f} MB" if limit >= 1_048_576 else f"{limit} bytes"
    return f"the file is larger than the limit of {shown}; the limit is what one upload may hold"
