"""Model artifacts through Django's storage API (`storages["artifacts"]`).

Layout: models/{person_id}/{model_type}/{version}/
    <model files>        exactly what forecaster.to_files() returned (safe formats, no pickle)
    metadata.json        training date, data range, features, hyperparameters, metrics, versions
    training_log.txt     what the pipeline did, for a human
    SHA256SUMS           SHA-256 of each file above, `sha256sum -c SHA256SUMS` checks a copy offline

Integrity: the row stores `artifact_manifest` ({name: sha256}) and `artifact_sha256`, the
SHA-256 of the canonical JSON of that manifest. Every load re-hashes every listed file and
recomputes the digest; any difference (a changed byte, a missing file, an edited manifest in
the database) raises ArtifactIntegrityError and is logged at ERROR level. Nothing is loaded from
a file that was not verified, and no file format used here executes code on load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from importlib import metadata as importlib_metadata

from django.core.files.base import ContentFile
from django.core.files.storage import storages

logger = logging.getLogger(__name__)

STORAGE_ALIAS = "artifacts"
METADATA_FILE = "metadata.json"
LOG_FILE = "training_log.txt"
CHECKSUMS_FILE = "SHA256SUMS"
RESERVED_FILES = frozenset({METADATA_FILE, LOG_FILE, CHECKSUMS_FILE})
# Reported name -> the distributions that may provide it (XGBoost ships as xgboost or xgboost-cpu).
LIBRARIES = {
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "scikit-learn": ("scikit-learn",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "skops": ("skops",),
    "scipy": ("scipy",),
    "django": ("django",),
}


class ArtifactIntegrityError(Exception):
    """A stored model does not match the SHA-256 recorded when it was trained (or is missing)."""


def artifact_storage():
    return storages[STORAGE_ALIAS]


def artifact_dir(mlmodel) -> str:
    return f"models/{mlmodel.person_id}/{mlmodel.model_type}/{mlmodel.version}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest: dict[str, str]) -> str:
    """One SHA-256 over every file: canonical JSON of the sorted {name: sha256} manifest."""
    canonical = json.dumps(dict(sorted(manifest.items())), sort_keys=True, separators=(",", ":"))
    return sha256_hex(canonical.encode("utf-8"))


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name, distributions in LIBRARIES.items():
        for distribution in distributions:
            try:
                versions[name] = importlib_metadata.version(distribution)
                break
            except importlib_metadata.PackageNotFoundError:
                continue
    return versions


def save_artifacts(mlmodel, files: dict[str, bytes], metadata: dict, log_text: str) -> str:
    """Write the model files, metadata.json and training_log.txt; return the manifest digest.

    Sets mlmodel.storage_path, artifact_manifest and artifact_sha256 (the caller saves the row).
    On any error every file written so far is removed, so a failed save leaves nothing behind.
    """
    clash = RESERVED_FILES.intersection(files)
    if clash:
        raise ValueError(f"model file names clash with registry files: {sorted(clash)}")
    for name in files:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"model file name {name!r} is not a plain file name")

    storage = artifact_storage()
    directory = artifact_dir(mlmodel)
    metadata = {**metadata, "library_versions": metadata.get("library_versions") or library_versions()}
    contents: dict[str, bytes] = dict(files)
    contents[METADATA_FILE] = json.dumps(metadata, indent=2, sort_keys=True, default=str).encode("utf-8")
    contents[LOG_FILE] = (log_text or "").encode("utf-8")
    manifest = {name: sha256_hex(data) for name, data in contents.items()}

    # The version is unique in the database and this row owns it, so anything already at this
    # path is debris of a crashed earlier attempt; remove it rather than let the storage rename.
    _remove_directory(storage, directory)
    written: list[str] = []
    try:
        checksums = "".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items()))
        for name, data in sorted(contents.items()) + [(CHECKSUMS_FILE, checksums.encode("utf-8"))]:
            path = f"{directory}/{name}"
            saved_as = storage.save(path, ContentFile(data))
            written.append(saved_as)
            if saved_as != path:
                raise RuntimeError(f"artifact storage saved {path} as {saved_as}")
    except Exception:
        for path in written:
            _delete_quietly(storage, path)
        raise

    mlmodel.storage_path = directory
    mlmodel.artifact_manifest = manifest
    mlmodel.artifact_sha256 = manifest_digest(manifest)
    return mlmodel.artifact_sha256


def read_verified_files(mlmodel) -> dict[str, bytes]:
    """Every stored file of a model, each checked against the SHA-256 recorded on the row."""
    manifest = mlmodel.artifact_manifest or {}
    problem = None
    if not mlmodel.artifact_sha256 or not manifest:
        problem = "no artifact checksum recorded"
    elif manifest_digest(manifest) != mlmodel.artifact_sha256:
        problem = "manifest does not match the recorded SHA-256"
    if problem:
        _refuse(mlmodel, problem)

    storage = artifact_storage()
    contents: dict[str, bytes] = {}
    for name, expected in sorted(manifest.items()):
        path = f"{mlmodel.storage_path}/{name}"
        try:
            with storage.open(path, "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, OSError) as exc:
            _refuse(mlmodel, f"{name} is missing ({exc.__class__.__name__})")
        if sha256_hex(data) != expected:
            _refuse(mlmodel, f"{name} does not match its SHA-256")
        contents[name] = data
    return contents


def load_forecaster(mlmodel):
    """The verified GlucoseForecaster of a model row; ArtifactIntegrityError if tampered/missing."""
    from mlmodels.core.forecaster import GlucoseForecaster

    contents = read_verified_files(mlmodel)
    model_files = {name: data for name, data in contents.items() if name not in RESERVED_FILES}
    return GlucoseForecaster.from_files(model_files)


def read_metadata(mlmodel) -> dict:
    return json.loads(read_verified_files(mlmodel)[METADATA_FILE])


def delete_artifacts(mlmodel) -> None:
    """Remove every stored file of a model (idempotent)."""
    if mlmodel.person_id is None or not mlmodel.version:
        return
    _remove_directory(artifact_storage(), mlmodel.storage_path or artifact_dir(mlmodel))


def delete_person_artifacts(person_id: int, mlmodels) -> None:
    """Remove the files of every given model of a person, then the person's whole folder
    (`models/{person_id}/`, left-overs of crashed saves included)."""
    for mlmodel in mlmodels:
        delete_artifacts(mlmodel)
    _remove_tree(artifact_storage(), f"models/{int(person_id)}")


def _remove_tree(storage, directory: str) -> None:
    """Remove a folder of the artifact storage with everything in it, sub-folders included."""
    try:
        folders, _ = storage.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    for folder in folders:
        _remove_tree(storage, f"{directory}/{folder}")
    _remove_directory(storage, directory)


def _remove_directory(storage, directory: str) -> None:
    """Remove the files of one folder (never a sub-folder), then the folder if it is empty."""
    try:
        _, names = storage.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        _delete_quietly(storage, f"{directory}/{name}")
    _remove_empty_folder(storage, directory)


def _refuse(mlmodel, problem: str):
    logger.error(
        "Refusing to load model %s (person %s, version %s, path %s): %s",
        mlmodel.pk, mlmodel.person_id, mlmodel.version, mlmodel.storage_path, problem,
    )
    raise ArtifactIntegrityError(f"model {mlmodel.version}: {problem}")


def _remove_empty_folder(storage, directory: str) -> None:
    try:  # file-system storages keep empty folders; other backends have no folders
        os.rmdir(storage.path(directory))
    except (NotImplementedError, OSError):
        pass


def _delete_quietly(storage, path: str) -> None:
    try:
        storage.delete(path)
    except FileNotFoundError:
        pass
