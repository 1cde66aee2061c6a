"""Login guessing (django-axes): what a login answers while an account or address is locked
(429): a plain page that says why, for how long, and that staff can unlock (admin: Axes > Access
attempts, delete the rows; or `manage.py axes_reset_username NAME`); and which address a request
comes from.

Behind reverse proxies every request arrives from the nearest proxy's address, so counting by
REMOTE_ADDR would lock everyone out together; with GLUCAST_TRUSTED_PROXY_COUNT proxies in front,
the client is the address the outermost trusted proxy put into X-Forwarded-For (counted from the
right: what a client writes there itself is never believed). DRF's throttles use the same count.
"""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


def locked_out(request, original_response=None, credentials=None):
    minutes = settings.GLUCAST_LOGIN_COOLOFF_MIN
    message = _(
        "Too many failed logins for this account or from this address, so logging in is paused "
        "for %(minutes)d minutes after the last failed try. Staff can unlock it sooner."
    ) % {"minutes": minutes}
    if "json" in request.headers.get("Accept", "") or request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return JsonResponse({"detail": message, "code": "locked_out"}, status=429)
    return render(request, "registration/locked_out.html", {"message": message}, status=429)


def client_address(request) -> str | None:
    """The client's address as the trusted proxies in front (GLUCAST_TRUSTED_PROXY_COUNT) saw it."""
    proxies = settings.GLUCAST_TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-min(proxies, len(forwarded))]
    return request.META.get("REMOTE_ADDR")
