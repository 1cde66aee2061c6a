"""Nightscout API v3's authorization: a per-person access token, traded for a short-lived JWT.

AndroidAPS' NSClientV3 (core/nssdk NSAuthInterceptor) sends every v3 call with
`Authorization: Bearer <jwt>` and a `Date` header of its clock in epoch milliseconds. On a 401 or
403 it calls `GET /api/v2/authorization/request/<access token>` once, keeps the `token` of the
answer and retries; a 401 there means a wrong token (it stops and tells the user), and a 401
whose body says "Date header out of tolerance" means the phone's clock is wrong.

- The access token is Nightscout's `<name>-<hex>` form, `glucast-` and 32 hex digits (128
  random bits). Stored: SHA-256 of it, unique-indexed (a random 128-bit token needs no slow hash:
  nothing to guess), plus a hint; the plaintext is shown once on the data page.
- The JWT (HS256, PyJWT) carries `sub` (the token row), `tv` (a prefix of the token's stored
  hash, so rotating or removing the token ends every JWT made from it), `iat` and `exp`
  (Nightscout's 8 hours). Unlike Nightscout's, it does not carry the access token itself.
  Its key is derived from SECRET_KEY for this one purpose.
- Both authenticate the /ns/api/v3 views only: glucast's own API never consults this module,
  and the upload secret of API v1 does not open v3 (nor this token v1).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as random_secrets
from datetime import datetime, timedelta, timezone as dt_timezone
from email.utils import parsedate_to_datetime

import jwt
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from observations.nightscout.models import NightscoutAccessToken
from observations.validation import ascii_digits
from persons.row_security import clear_for_request, use_everyone_for_request, use_person_of

TOKEN_PREFIX = "glucast-"
TOKEN_HEX_DIGITS = 32
_TOKEN_FORM = re.compile(r"^[a-z0-9]{1,32}-[0-9a-f]{16,64}$")
JWT_LIFETIME = timedelta(hours=8)  # Nightscout's (lib/server/enclave.js signJWT)
JWT_ALGORITHM = "HS256"
_SUBJECT_PREFIX = "ns-v3-token:"
_VERSION_CHARS = 16
# Old Nightscout API v3 refused requests whose Date header was further than this from its clock
# (API3_TIME_SKEW_TOLERANCE, 5 minutes); AndroidAPS still reads the answer's message for it.
DATE_TOLERANCE = timedelta(minutes=5)

# Nightscout API v3's messages (lib/api3/const.json); AndroidAPS matches some of them literally.
MSG_MISSING_OR_BAD_TOKEN = "Missing or bad access token or JWT"
MSG_BAD_TOKEN = "Bad access token or JWT"
MSG_DATE_OUT_OF_TOLERANCE = "Date header out of tolerance"
MSG_BAD_DATE = "Bad Date header"


def lookup_for(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


@transaction.atomic
def issue_access_token(*, person) -> str:
    """Create or rotate the person's API v3 access token; returns the plaintext (shown once).

    The old token and every JWT made from it stop working at once."""
    token = TOKEN_PREFIX + random_secrets.token_hex(TOKEN_HEX_DIGITS // 2)
    NightscoutAccessToken.objects.update_or_create(
        person=person,
        defaults={"lookup": lookup_for(token), "hint": token[: len(TOKEN_PREFIX) + 4], "last_used_at": None},
    )
    return token


def revoke_access_token(*, person) -> bool:
    deleted, _ = NightscoutAccessToken.objects.for_person(person).delete()
    return bool(deleted)


def _jwt_key() -> bytes:
    """A key for these JWTs only, derived from SECRET_KEY (rotating SECRET_KEY ends them)."""
    return hmac.new(settings.SECRET_KEY.encode("utf-8"), b"glucast.nightscout.v3.jwt", hashlib.sha256).digest()


def _find(**lookup) -> NightscoutAccessToken | None:
    # Whose token this is, is known only after looking among everyone's: the explicit
    # row-security context for that one query, then the token's person (or nobody).
    use_everyone_for_request("Nightscout API v3 access token lookup")
    row = NightscoutAccessToken.objects.select_related("person__owner").filter(**lookup).first()
    if row is None or not row.person.owner.is_active:
        clear_for_request()
        return None
    use_person_of(row.person.owner)
    return row


def _touch(row: NightscoutAccessToken, now: datetime) -> None:
    # At most once a minute, so a busy uploader does not write the row on every call.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        NightscoutAccessToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now


def exchange_access_token(presented: str, *, now: datetime | None = None) -> dict | None:
    """Nightscout's /api/v2/authorization/request/<token>: the JWT answer, or None for a token
    that is not one of glucast's (the caller answers 401)."""
    presented = (presented or "").strip()
    if not _TOKEN_FORM.match(presented):
        return None
    row = _find(lookup=lookup_for(presented))
    if row is None:
        return None
    now = now or timezone.now()
    _touch(row, now)
    issued = int(now.timestamp())
    expires = issued + int(JWT_LIFETIME.total_seconds())
    claims = {"sub": f"{_SUBJECT_PREFIX}{row.pk}", "tv": row.lookup[:_VERSION_CHARS], "iat": issued, "exp": expires}
    token = jwt.encode(claims, _jwt_key(), algorithm=JWT_ALGORITHM)
    # Nightscout answers with the subject's name and permission groups too; the name is kept
    # generic (it is the person's, not a staff subject) and the permissions are /status's.
    return {"token": token, "sub": "glucast", "permissionGroups": [["api:*:*"]], "iat": issued, "exp": expires}


def date_header_problem(request, *, now: datetime | None = None) -> str | None:
    """Nightscout's message when the request's Date header is unreadable or too far from our
    clock; None when it is fine or absent (curl sends none). AndroidAPS sends epoch ms."""
    raw = request.META.get("HTTP_DATE")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        if ascii_digits(raw) and len(raw) <= 16:
            sent = datetime.fromtimestamp(int(raw) / 1000, tz=dt_timezone.utc)
        else:
            sent = parsedate_to_datetime(raw)
            if sent.tzinfo is None:
                sent = sent.replace(tzinfo=dt_timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError, IndexError):
        return MSG_BAD_DATE
    now = now or timezone.now()
    if abs(now - sent) > DATE_TOLERANCE:
        return MSG_DATE_OUT_OF_TOLERANCE
    return None


class NightscoutV3Unauthorized(exceptions.AuthenticationFailed):
    """A 401 whose body is Nightscout's ({"status": 401, "message": ...}); see the v3 views."""


class NightscoutBearerAuthentication(BaseAuthentication):
    """DRF authentication of the /ns/api/v3 views: the person whose JWT was presented.

    `request.auth` is the NightscoutAccessToken row; `request.user` its person's owner. Every
    failure is a 401, never an anonymous pass: a missing bearer too (the views require it)."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential or len(credential) > 2000:
            raise NightscoutV3Unauthorized(MSG_MISSING_OR_BAD_TOKEN)
        problem = date_header_problem(request)
        if problem:
            raise NightscoutV3Unauthorized(problem)
        try:
            claims = jwt.decode(
                credential, _jwt_key(), algorithms=[JWT_ALGORITHM], options={"require": ["exp", "iat", "sub"]}
            )
        except jwt.PyJWTError:
            raise NightscoutV3Unauthorized(MSG_BAD_TOKEN) from None
        subject = str(claims.get("sub", ""))
        if not subject.startswith(_SUBJECT_PREFIX) or not ascii_digits(subject[len(_SUBJECT_PREFIX):]):
            raise NightscoutV3Unauthorized(MSG_BAD_TOKEN)
        row = _find(pk=int(subject[len(_SUBJECT_PREFIX):]))
        if row is None or not hmac.compare_digest(row.lookup[:_VERSION_CHARS], str(claims.get("tv", ""))):
            clear_for_request()
            raise NightscoutV3Unauthorized(MSG_BAD_TOKEN)
        _touch(row, timezone.now())
        return row.person.owner, row

    def authenticate_header(self, request):
        return 'Bearer realm="Nightscout API v3"'
