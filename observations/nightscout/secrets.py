"""The per-person upload secret of the Nightscout surface, and how a request presents it.

Nightscout's convention: apps send the header `api-secret: <SHA-1 hex of the secret>` (xDrip+
takes the secret from the user part of `https://SECRET@host/api/v1/` and hashes it), or a
`token` query parameter. glucast accepts, in either place, the SHA-1 hex or the plain secret (a
generated secret is never 40 hex digits, so the two cannot be confused; accepting the plain one
costs one hash and helps people testing with curl).

Stored: SHA-256 of the SHA-1 hex, unique-indexed. The secret has 192 random bits, so a fast hash
is safe and one indexed query finds the person; the plaintext is shown once. A secret
authenticates the /ns/ surface only: the rest of the API never consults this class.
"""

from __future__ import annotations

import hashlib
import re
import secrets as random_secrets

from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from observations.nightscout.models import NightscoutUploadSecret
from persons.row_security import clear_for_request, use_everyone_for_request, use_person_of

_SHA1_HEX = re.compile(r"^[0-9a-fA-F]{40}$")
SECRET_BYTES = 24  # 32 URL-safe characters, usable as the user part of a URL
HEADER = "api-secret"
# "api-secret" as Django's META names it (clients also write API-SECRET; same key).
_META_HEADERS = ("HTTP_API_SECRET",)


def sha1_hex(secret: str) -> str:
    return hashlib.sha1(secret.encode("utf-8")).hexdigest()


def lookup_for(presented: str) -> str:
    """The stored lookup for what a client presented: a SHA-1 hex or the plain secret."""
    presented = presented.strip()
    digest = presented.lower() if _SHA1_HEX.match(presented) else sha1_hex(presented)
    return hashlib.sha256(digest.encode("ascii")).hexdigest()


@transaction.atomic
def issue_secret(*, person, secret: str | None = None) -> str:
    """Create or rotate the person's upload secret; returns the plaintext (shown once).

    The old secret stops working at once: apps need the new one. `secret` installs a given one
    instead of a random one: the demo loader's, derived from SECRET_KEY so the demo's live replay
    can present it (config/demo.py); stored like any other, as its hash only."""
    secret = secret or random_secrets.token_urlsafe(SECRET_BYTES)
    if _SHA1_HEX.match(secret):
        raise ValueError("an upload secret must not look like a SHA-1 hex (clients send that form)")
    NightscoutUploadSecret.objects.update_or_create(
        person=person,
        defaults={"lookup": lookup_for(secret), "hint": secret[:4], "last_used_at": None},
    )
    return secret


def revoke_secret(*, person) -> bool:
    deleted, _ = NightscoutUploadSecret.objects.for_person(person).delete()
    return bool(deleted)


def presented_secret(request) -> str | None:
    for key in _META_HEADERS:
        value = request.META.get(key)
        if value:
            return value
    return request.GET.get("token") or None


class NightscoutSecretAuthentication(BaseAuthentication):
    """DRF authentication of the /ns/ views: the person whose upload secret was presented.

    `request.auth` is the NightscoutUploadSecret row; `request.user` its person's owner. A
    missing or unknown secret is a 401 (with a WWW-Authenticate naming the header)."""

    def authenticate(self, request):
        presented = presented_secret(request)
        if presented is None:
            return None
        if len(presented) > 200:
            raise exceptions.AuthenticationFailed("api-secret is not a valid upload secret")
        # Whose secret this is, is only known after looking among everyone's secrets: the
        # explicit row-security context for that one query, then the secret's person.
        use_everyone_for_request("Nightscout upload secret lookup")
        row = (
            NightscoutUploadSecret.objects.select_related("person__owner")
            .filter(lookup=lookup_for(presented))
            .first()
        )
        if row is None or not row.person.owner.is_active:
            clear_for_request()
            raise exceptions.AuthenticationFailed(
                "Unknown upload secret: create one on your glucast data page and use it as the API secret"
            )
        use_person_of(row.person.owner)
        now = timezone.now()
        # Written at most once a minute, so a busy uploader does not update the row on every post.
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            NightscoutUploadSecret.objects.filter(pk=row.pk).update(last_used_at=now)
            row.last_used_at = now
        return row.person.owner, row

    def authenticate_header(self, request):
        return HEADER
