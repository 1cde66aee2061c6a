"""What a login answers while django-axes holds an account or address locked (429): a plain page
that says why, for how long, and that staff can unlock (admin: Axes > Access attempts, delete the
rows; or `manage.py axes_reset_username NAME`)."""

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
