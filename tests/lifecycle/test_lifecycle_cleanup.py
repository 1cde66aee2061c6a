"""Old versions beyond the newest K are archived and their files removed — never the active one,
the previous one, a pinned one or one a rollout serves; staff archive follows the same rule."""

import pytest

from mlmodels.lifecycle import (
    activate_model,
    archive_model,
    cleanup_old_versions,
    previous_version,
    rollback_person_model,
)
from mlmodels.models import MLModel
from mlmodels.rollouts import RolloutError, create_rollout, pin_person
from tests.lifecycle.conftest import make_model

pytestmark = pytest.mark.django_db


def history(person, n, *, active_index=None, parent_chain=True):
    """Versions 1.0.0 .. 1.(n-1).0; the one at active_index (default the newest) is active and
    each version's parent is the one before it (as the registry records it)."""
    active_index = n - 1 if active_index is None else active_index
    rows, parent = [], None
    for i in range(n):
        row = make_model(person, f"1.{i}.0", status="ready" if i == active_index else "archived",
                         active=(i == active_index), parent=parent if parent_chain else None)
        rows.append(row)
        parent = row
    return rows


def files_exist(artifact_root, mlmodel):
    folder = artifact_root / f"models/{mlmodel.person_id}/{mlmodel.model_type}/{mlmodel.version}"
    return folder.exists() and any(folder.iterdir())


def test_cleanup_keeps_the_newest_k_and_never_the_active_or_previous(person, artifact_root, django_capture_on_commit_callbacks):
    # The active version is an OLD one (after a rollback), so "newest K" alone would drop it.
    rows = history(person, 8, active_index=2)

    with django_capture_on_commit_callbacks(execute=True):
        counts = cleanup_old_versions(keep=3)

    kept = {"1.7.0", "1.6.0", "1.5.0", "1.2.0", "1.1.0"}  # newest 3 + active 1.2.0 + its parent 1.1.0
    for row in rows:
        row.refresh_from_db()
        if row.version in kept:
            assert row.storage_path and files_exist(artifact_root, row), row.version
        else:
            assert row.storage_path == "" and row.status == "archived", row.version
            assert not files_exist(artifact_root, row), row.version
    assert counts["archived"] == 3
    active = MLModel.objects.get(person=person, is_active=True)
    assert active.version == "1.2.0" and active.status == "ready"
    # Idempotent.
    with django_capture_on_commit_callbacks(execute=True):
        assert cleanup_old_versions(keep=3)["archived"] == 0


def test_cleanup_with_keep_zero_still_keeps_active_previous_pinned_and_rollout_served(person, artifact_root,
                                                                                   django_capture_on_commit_callbacks):
    rows = history(person, 6)  # 1.5.0 active, 1.4.0 previous
    pin_person(rows[1], actor="test", reason="hold 1.1.0")
    make_model(person, "2.0.0", status="archived")
    make_model(person, "2.1.0", status="archived")
    create_rollout("glucose-prediction", 2, actor="test", reason="release 2 serves")  # serves 2.1.0

    with django_capture_on_commit_callbacks(execute=True):
        cleanup_old_versions(keep=0)

    with_files = set(MLModel.objects.filter(person=person).exclude(storage_path="").values_list("version", flat=True))
    assert with_files == {"1.5.0", "1.4.0", "1.1.0", "2.1.0"}


def test_a_training_version_is_left_alone(person, django_capture_on_commit_callbacks):
    history(person, 3)
    training = make_model(person, "1.9.0", status="training")
    with django_capture_on_commit_callbacks(execute=True):
        cleanup_old_versions(keep=0)
    training.refresh_from_db()
    assert training.storage_path and training.status == "training"


def test_rejected_versions_lose_their_files_but_keep_their_verdict(person, django_capture_on_commit_callbacks):
    history(person, 2)
    rejected = make_model(person, "1.5.0", status="rejected")
    with django_capture_on_commit_callbacks(execute=True):
        cleanup_old_versions(keep=0)
    rejected.refresh_from_db()
    assert rejected.storage_path == "" and rejected.status == "rejected"


def test_staff_archive_refuses_active_previous_and_pinned(person, artifact_root, django_capture_on_commit_callbacks):
    rows = history(person, 4)  # 1.3.0 active, 1.2.0 previous
    pin_person(rows[0], actor="test", reason="hold")
    for protected in (rows[3], rows[2], rows[0]):
        with pytest.raises(RolloutError, match="cannot be archived"):
            archive_model(protected, actor="test", reason="tidy up")
    with django_capture_on_commit_callbacks(execute=True):
        archived = archive_model(rows[1], actor="test", reason="tidy up")
    assert archived.status == "archived" and archived.storage_path == ""
    assert not files_exist(artifact_root, rows[1])
    with pytest.raises(RolloutError):
        activate_model(archived, actor="test", reason="files are gone")


def test_person_rollback_goes_to_the_parent_and_records_it(person, staff_user):
    rows = history(person, 3)
    previous = previous_version(rows[2])
    assert previous == rows[1]

    now_active = rollback_person_model(person, actor=staff_user, reason="2 looks wrong")

    assert now_active == rows[1]
    rows[2].refresh_from_db()
    assert not rows[2].is_active and rows[2].status == "archived"
    from mlmodels.models import RolloutEvent

    event = RolloutEvent.objects.get(person=person)
    assert event.action == "model_rolled_back" and event.actor == staff_user
    assert event.before == {"active": "1.2.0"} and event.after == {"active": "1.1.0"}


def test_activation_refuses_a_tampered_artifact(person, artifact_root):
    history(person, 1)
    candidate = make_model(person, "1.1.0", status="archived")
    manifest = artifact_root / candidate.storage_path / "manifest.json"
    manifest.write_bytes(manifest.read_bytes() + b" ")
    with pytest.raises(RolloutError, match="not activated"):
        activate_model(candidate, actor="test", reason="try")
    assert MLModel.objects.get(person=person, is_active=True).version == "1.0.0"
