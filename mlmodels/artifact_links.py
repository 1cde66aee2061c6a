"""Short-lived signed links to download a model's artifact files (staff only).

    signed_artifact_url(mlmodel, user) -> "/models/artifacts/<token>/"
    artifact_from_token(token, user) -> MLModel    (raises LinkRefused)

The token is a django.core.signing.TimestampSigner signature of "<model id>:<user id>": it is
valid for GLUCAST_ARTIFACT_LINK_MAX_AGE_S seconds and only for the staff user it
was made for, so a link pasted elsewhere is useless to anyone else.
"""

from __future__ import annotations

import io
import zipfile

from django.conf import settings
from django.core import signing
from django.urls import reverse

from mlmodels.models import MLModel
from mlmodels.storage import CHECKSUMS_FILE, read_verified_files

SALT = "glucast.mlmodels.artifact-link"


class LinkRefused(Exception):
    """The token is invalid, expired or was made for another user."""


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def max_age_s() -> int:
    return int(settings.GLUCAST_ARTIFACT_LINK_MAX_AGE_S)


def signed_artifact_url(mlmodel, user) -> str:
    token = _signer().sign(f"{mlmodel.pk}:{user.pk}")
    return reverse("artifact-download", args=[token])


def artifact_from_token(token: str, user):
    try:
        value = _signer().unsign(token, max_age=max_age_s())
    except signing.SignatureExpired as exc:
        raise LinkRefused("This download link has expired; make a new one in the admin.") from exc
    except signing.BadSignature as exc:
        raise LinkRefused("This download link is not valid.") from exc
    model_id, _, user_id = value.partition(":")
    if str(user.pk) != user_id:
        raise LinkRefused("This download link was made for another user.")
    mlmodel = MLModel.objects.filter(pk=int(model_id)).first()
    if mlmodel is None or not mlmodel.storage_path:
        raise LinkRefused("This version's files are no longer stored.")
    return mlmodel


def artifact_zip(mlmodel) -> bytes:
    """Every stored file, verified against the recorded SHA-256, plus SHA256SUMS, as one zip."""
    files = read_verified_files(mlmodel)
    buffer = io.BytesIO()
    folder = f"{mlmodel.model_type}-{mlmodel.person_id}-{mlmodel.version}"
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(f"{folder}/{name}", data)
        sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(mlmodel.artifact_manifest.items()))
        archive.writestr(f"{folder}/{CHECKSUMS_FILE}", sums)
    return buffer.getvalue()
