"""Staff-only endpoint outside the admin: the signed artifact download (/metrics, which reads
forecast outcomes, is predictions')."""

from __future__ import annotations

from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_GET

from mlmodels.artifact_links import LinkRefused, artifact_from_token, artifact_zip
from mlmodels.storage import ArtifactIntegrityError
from persons.row_security import use_everyone_for_request


@require_GET
def artifact_download(request, token: str):
    """A staff user's own signed link -> the zip of the verified files. Others: 404."""
    if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
        raise Http404("No such file.")
    use_everyone_for_request("staff artifact download")  # a signed link names any person's model
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
