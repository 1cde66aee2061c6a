"""Staff-only endpoints outside the admin: the signed artifact download and /metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_GET

from mlmodels.artifact_links import LinkRefused, artifact_from_token, artifact_zip
from mlmodels.monitoring import prometheus_text

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@require_GET
def artifact_download(request, token: str):
    """A staff user's own signed link -> the zip of the verified files. Others: 404."""
    from mlmodels.storage import ArtifactIntegrityError

    if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
        raise Http404("No such file.")
    try:
        mlmodel = artifact_from_token(token, request.user)
    except LinkRefused as exc:
        return HttpResponseForbidden(str(exc), content_type="text/plain; charset=utf-8")
    try:
        data = artifact_zip(mlmodel)
    except ArtifactIntegrityError as exc:
        return HttpResponse(
            f"Refused: the stored files do not match their SHA-256 ({exc}).",
            status=409, content_type="text/plain; charset=utf-8",
        )
    response = HttpResponse(data, content_type="application/zip")
    filename = f"{mlmodel.model_type}-{mlmodel.person_id}-{mlmodel.version}.zip"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def metrics_allowed(request) -> bool:
    """Staff (session) or `Authorization: Bearer <GLUCAST_METRICS_TOKEN>` when that is set."""
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        return True
    expected = getattr(settings, "GLUCAST_METRICS_TOKEN", "") or ""
    header = request.headers.get("Authorization", "")
    if expected and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), expected.encode())
    return False


@require_GET
def metrics(request):
    if not metrics_allowed(request):
        response = HttpResponse("Staff or a bearer token only.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="glucast metrics"'
        return response
    response = HttpResponse(prometheus_text(), content_type=PROMETHEUS_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
