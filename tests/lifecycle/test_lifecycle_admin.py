"""Only staff reach the rollout and model actions, the monitoring page, signed artifact links and
/metrics; every action asks for a reason and records who did it."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from mlmodels.artifact_links import signed_artifact_url
from mlmodels.models import MLModel, ModelPin, Rollout, RolloutEvent
from mlmodels.rollouts import create_rollout, set_candidate
from tests.factories import UserFactory
from tests.lifecycle.conftest import logged_in, make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollout():
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="start")
    return set_candidate(rollout, 2, actor="test", reason="candidate")


@pytest.fixture
def plain_client(person):
    return logged_in(person.owner)


def admin_urls(rollout, mlmodel):
    return [
        reverse("admin:mlmodels_rollout_changelist"),
        reverse("admin:mlmodels_rollout_change", args=[rollout.pk]),
        reverse("admin:mlmodels_rollout_percentage", args=[rollout.pk]),
        reverse("admin:mlmodels_rollout_candidate", args=[rollout.pk]),
        reverse("admin:mlmodels_rollout_promote", args=[rollout.pk]),
        reverse("admin:mlmodels_rollout_rollback", args=[rollout.pk]),
        reverse("admin:mlmodels_rollout_auto_promote", args=[rollout.pk]),
        reverse("admin:mlmodels_rollout_monitoring"),
        reverse("admin:mlmodels_mlmodel_changelist"),
        reverse("admin:mlmodels_mlmodel_artifact_link", args=[mlmodel.pk]),
        reverse("admin:mlmodels_rolloutevent_changelist"),
        reverse("admin:mlmodels_modelpin_changelist"),
        reverse("admin:predictions_predictionlog_changelist") + "?arm=canary",
    ]


def test_staff_reach_every_lifecycle_screen(staff_client, rollout, person):
    mlmodel = make_model(person, "1.0.0", active=True)
    for url in admin_urls(rollout, mlmodel):
        response = staff_client.get(url)
        assert response.status_code == 200, url
    page = staff_client.get(reverse("admin:mlmodels_rollout_change", args=[rollout.pk])).content.decode()
    assert "Not enough evidence yet" in page and "Set canary %" in page


def test_people_who_are_not_staff_reach_none_of_them(plain_client, client, rollout, person):
    mlmodel = make_model(person, "1.0.0", active=True)
    for url in admin_urls(rollout, mlmodel):
        response = plain_client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
        response = plain_client.post(url, {"percentage": 50, "reason": "sneaky"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 0 and rollout.events.count() == 2


def test_set_percentage_form_changes_the_rollout_and_records_the_staff_user(staff_client, staff_user, rollout):
    url = reverse("admin:mlmodels_rollout_percentage", args=[rollout.pk])
    assert staff_client.post(url, {"percentage": 10}).status_code == 200  # reason missing: form again
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 0

    response = staff_client.post(url, {"percentage": 10, "reason": "first 10%"})
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 10 and rollout.status == "canary"
    event = rollout.events.first()
    assert (event.actor, event.reason, event.action) == (staff_user, "first 10%", "percentage_set")

    assert staff_client.post(url, {"percentage": 150, "reason": "too much"}).status_code == 200
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 10


def test_promote_and_rollback_buttons(staff_client, rollout):
    promote = reverse("admin:mlmodels_rollout_promote", args=[rollout.pk])
    rollback = reverse("admin:mlmodels_rollout_rollback", args=[rollout.pk])
    assert staff_client.post(promote, {"reason": "better"}).status_code == 302
    rollout.refresh_from_db()
    assert (rollout.stable_release, rollout.candidate_release) == (2, None)
    assert staff_client.post(rollback, {"reason": "worse in the evening"}).status_code == 302
    rollout.refresh_from_db()
    assert (rollout.stable_release, rollout.candidate_release, rollout.status) == (1, 2, "rolled_back")
    # A refused change shows the reason on the form instead of a 500.
    response = staff_client.post(rollback, {"reason": "again"})
    assert response.status_code == 200 and "no previous stable release" in response.content.decode()


def test_rollout_is_created_from_the_admin_with_a_reason_and_not_edited_directly(staff_client, staff_user):
    url = reverse("admin:mlmodels_rollout_add")
    response = staff_client.post(url, {"model_type": "glucose-prediction", "stable_release": 1, "reason": "go"})
    assert response.status_code == 302
    rollout = Rollout.objects.get()
    assert rollout.events.get().actor == staff_user
    change = staff_client.post(reverse("admin:mlmodels_rollout_change", args=[rollout.pk]),
                               {"stable_release": 5})
    rollout.refresh_from_db()
    assert rollout.stable_release == 1 and change.status_code in (200, 302, 403)


def test_model_actions_ask_for_a_reason_and_record_the_staff_user(staff_client, staff_user, person):
    old = make_model(person, "1.0.0", active=True)
    new = make_model(person, "1.1.0", parent=old)
    url = reverse("admin:mlmodels_mlmodel_changelist")

    staff_client.post(url, {"action": "activate", "_selected_action": [new.pk], "reason": ""})
    assert MLModel.objects.get(is_active=True) == old

    staff_client.post(url, {"action": "activate", "_selected_action": [new.pk], "reason": "retrain is better"})
    assert MLModel.objects.get(is_active=True) == new
    staff_client.post(url, {"action": "rollback_to_previous", "_selected_action": [new.pk], "reason": "undo"})
    assert MLModel.objects.get(is_active=True) == old
    staff_client.post(url, {"action": "pin", "_selected_action": [new.pk], "reason": "try on this person"})
    assert ModelPin.objects.get(person=person).ml_model == new
    staff_client.post(url, {"action": "archive", "_selected_action": [new.pk], "reason": "tidy"})
    new.refresh_from_db()
    assert new.storage_path  # pinned: refused
    actions = list(RolloutEvent.objects.order_by("id").values_list("action", "actor"))
    assert actions == [("model_activated", staff_user.pk), ("model_rolled_back", staff_user.pk),
                       ("pinned", staff_user.pk)]


def test_model_list_filters_by_release_and_shows_metrics(staff_client, person):
    make_model(person, "1.0.0", active=True, metrics={"per_horizon": {"model": {"30": {"mae": 9.5}}}})
    make_model(person, "2.0.0")
    page = staff_client.get(reverse("admin:mlmodels_mlmodel_changelist") + "?release=2").content.decode()
    assert "2.0.0" in page and "1.0.0" not in page
    page = staff_client.get(reverse("admin:mlmodels_mlmodel_changelist") + "?release=1").content.decode()
    assert "9.5" in page and "realized mae 30 min" in page.lower()


# --- Signed artifact links --------------------------------------------------------------------


def test_staff_download_the_verified_artifact_through_their_signed_link(staff_client, staff_user, person):
    mlmodel = make_model(person, "1.0.0", active=True)
    page = staff_client.get(reverse("admin:mlmodels_mlmodel_artifact_link", args=[mlmodel.pk])).content.decode()
    assert "/models/artifacts/" in page

    response = staff_client.get(signed_artifact_url(mlmodel, staff_user))

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert any(n.endswith("/manifest.json") for n in names) and any(n.endswith("/SHA256SUMS") for n in names)


def test_artifact_links_refuse_everyone_else(client, staff_client, staff_user, person, settings):
    mlmodel = make_model(person, "1.0.0", active=True)
    url = signed_artifact_url(mlmodel, staff_user)

    assert client.get(url).status_code == 404  # anonymous
    assert logged_in(person.owner).get(url).status_code == 404  # the model's own person, not staff
    other_staff = logged_in(UserFactory(is_staff=True))
    assert other_staff.get(url).status_code == 403  # made for another staff user
    assert staff_client.get(url[:-3] + "xx/").status_code == 403  # tampered
    settings.GLUCAST_ARTIFACT_LINK_MAX_AGE_S = -1
    assert staff_client.get(url).status_code == 403  # expired


def test_a_tampered_artifact_is_not_handed_out(staff_client, staff_user, person, artifact_root):
    mlmodel = make_model(person, "1.0.0", active=True)
    (artifact_root / mlmodel.storage_path / "manifest.json").write_bytes(b"{}")
    assert staff_client.get(signed_artifact_url(mlmodel, staff_user)).status_code == 409


# --- /metrics ---------------------------------------------------------------------------------


def test_metrics_for_staff_or_the_bearer_token_only(client, staff_client, person, settings, rollout):
    settings.GLUCAST_METRICS_TOKEN = "s3cret-token"
    response = staff_client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    body = response.content.decode()
    assert "# TYPE glucast_training_jobs_total counter" in body
    assert 'glucast_rollout_stable_release{model_type="glucose-prediction"} 1' in body

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert logged_in(person.owner).get("/metrics").status_code == 401
    settings.GLUCAST_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
