"""Artifacts: stored through the `artifacts` storage, SHA-256 checked on every load."""

import json
import logging

import pytest

from mlmodels.models import MLModel
from mlmodels.storage import (
    ArtifactIntegrityError,
    artifact_dir,
    delete_artifacts,
    manifest_digest,
    read_verified_files,
    save_artifacts,
)

pytestmark = pytest.mark.django_db


def new_row(person, version="1.0.0"):
    major, minor, patch = (int(p) for p in version.split("."))
    return MLModel.objects.create(
        person=person, version=version, version_major=major, version_minor=minor, version_patch=patch
    )


FILES = {"model.json": b'{"weights": [1, 2, 3]}', "ridge.skops": bytes(range(256)) * 4}


def test_files_land_in_the_documented_layout_with_a_manifest_digest(person, artifact_root):
    row = new_row(person)
    digest = save_artifacts(row, FILES, {"algorithm": "ridge"}, "fitted ridge\n")
    row.save()

    folder = artifact_root / "models" / str(person.pk) / "glucose-prediction" / "1.0.0"
    assert row.storage_path == artifact_dir(row) == f"models/{person.pk}/glucose-prediction/1.0.0"
    assert sorted(p.name for p in folder.iterdir()) == [
        "SHA256SUMS", "metadata.json", "model.json", "ridge.skops", "training_log.txt",
    ]
    assert f"{row.artifact_manifest['model.json']}  model.json" in (folder / "SHA256SUMS").read_text()
    assert set(row.artifact_manifest) == {"model.json", "ridge.skops", "metadata.json", "training_log.txt"}
    assert digest == row.artifact_sha256 == manifest_digest(row.artifact_manifest)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["algorithm"] == "ridge"
    assert {"python", "numpy", "pandas", "scikit-learn", "xgboost"} <= set(metadata["library_versions"])
    assert (folder / "training_log.txt").read_text() == "fitted ridge\n"

    stored = read_verified_files(MLModel.objects.get(pk=row.pk))
    assert stored["model.json"] == FILES["model.json"]
    assert stored["ridge.skops"] == FILES["ridge.skops"]


def test_one_changed_byte_is_refused_and_logged(person, artifact_root, caplog):
    row = new_row(person)
    save_artifacts(row, FILES, {}, "")
    row.save()
    path = artifact_root / row.storage_path / "ridge.skops"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR, logger="mlmodels.storage"):
        with pytest.raises(ArtifactIntegrityError, match="ridge.skops"):
            read_verified_files(MLModel.objects.get(pk=row.pk))
    assert any("Refusing to load model" in r.getMessage() for r in caplog.records)


def test_a_missing_file_is_refused(person, artifact_root):
    row = new_row(person)
    save_artifacts(row, FILES, {}, "")
    row.save()
    (artifact_root / row.storage_path / "model.json").unlink()
    with pytest.raises(ArtifactIntegrityError, match="model.json is missing"):
        read_verified_files(MLModel.objects.get(pk=row.pk))


def test_a_manifest_edited_in_the_database_is_refused(person, artifact_root):
    row = new_row(person)
    save_artifacts(row, FILES, {}, "")
    row.save()
    # Someone swaps a file AND updates its hash on the row, but not the digest.
    (artifact_root / row.storage_path / "model.json").write_bytes(b"{}")
    row.artifact_manifest["model.json"] = "0" * 64
    row.save()
    with pytest.raises(ArtifactIntegrityError, match="manifest"):
        read_verified_files(MLModel.objects.get(pk=row.pk))


def test_a_row_without_checksum_is_refused(person, artifact_root):
    with pytest.raises(ArtifactIntegrityError):
        read_verified_files(new_row(person))


def test_a_failed_save_leaves_nothing_behind(person, artifact_root):
    row = new_row(person)
    folder = artifact_root / "models" / str(person.pk) / "glucose-prediction" / "1.0.0"
    # A folder where a file must go: the storage saves under another name, which is refused
    # after metadata.json and model.json were already written.
    (folder / "ridge.skops").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="saved .* as"):
        save_artifacts(row, FILES, {}, "")
    assert sorted(p.name for p in folder.iterdir()) == ["ridge.skops"]
    assert not any((folder / "ridge.skops").iterdir())
    assert row.artifact_sha256 == "" and row.storage_path == ""


@pytest.mark.parametrize("name", ["metadata.json", "../escape.bin", "", ".hidden"])
def test_unsafe_or_reserved_file_names_are_refused(person, artifact_root, name):
    with pytest.raises(ValueError):
        save_artifacts(new_row(person), {name: b"x"}, {}, "")


def test_delete_removes_every_file(person, artifact_root):
    row = new_row(person)
    save_artifacts(row, FILES, {}, "")
    row.save()
    delete_artifacts(row)
    assert not (artifact_root / row.storage_path).exists()
    delete_artifacts(row)  # idempotent
