"""The admin speaks the product's language: releases are chosen from those that exist, rows only
the pipeline writes cannot be added by hand, names read right, and one page says what serves
whom now (with the shadow run and its paired comparison on the rollout page)."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from mlmodels.models import Rollout
from mlmodels.rollouts import create_rollout, set_candidate
from predictions.services import forecast_for_person
from predictions.shadow import run_pending_shadows
from tests.factories import PersonFactory
from tests.lifecycle.conftest import give_readings, logged_in
from tests.lifecycle.test_lifecycle_releases import store_version, two_releases  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_rollout_is_created_by_choosing_a_model_type_and_an_existing_release(staff_client, two_releases):
    person = PersonFactory()
    store_version(person, "2.0.0", active=True)
    page = staff_client.get(reverse("admin:mlmodels_rollout_add")).content.decode()
    assert re.search(r'<select name="model_type"', page) and re.search(r'<select name="stable_release"', page)
    assert 'value="glucose-prediction"' in page
    assert "release 1 (0 people have a version)" in page and "release 2 (1 people have a version)" in page
    assert 'name="stable_release" type' not in page  # no free text

    refused = staff_client.post(reverse("admin:mlmodels_rollout_add"),
                                {"model_type": "glucose-prediction", "stable_release": 7, "reason": "typo"})
    assert refused.status_code == 200 and not Rollout.objects.exists()
    made = staff_client.post(reverse("admin:mlmodels_rollout_add"),
                             {"model_type": "glucose-prediction", "stable_release": 1, "reason": "go"})
    assert made.status_code == 302 and Rollout.objects.get().stable_release == 1


def test_candidate_and_shadow_are_set_from_choices_with_a_reason(staff_client, staff_user, two_releases):
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="start")
    url = reverse("admin:mlmodels_rollout_candidate", args=[rollout.pk])
    page = staff_client.get(url).content.decode()
    assert '<select name="candidate_release"' in page and "release 2" in page
    response = staff_client.post(url, {"candidate_release": 2, "percentage": 0, "shadow_percentage": 30,
                                       "reason": "release 2 in shadow first"})
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert (rollout.candidate_release, rollout.shadow_percentage, rollout.status) == (2, 30, "shadow")
    staff_client.post(reverse("admin:mlmodels_rollout_shadow", args=[rollout.pk]),
                      {"percentage": 50, "reason": "more pairs"})
    rollout.refresh_from_db()
    assert rollout.shadow_percentage == 50 and rollout.events.first().actor == staff_user


@pytest.mark.parametrize("model", ["mlmodels.MLModel", "mlmodels.TrainingJob", "mlmodels.RolloutEvent",
                                   "mlmodels.ModelPin", "predictions.PredictionLog", "predictions.ModelPerformance"])
def test_rows_only_the_pipeline_writes_have_no_add_button(staff_client, model):
    meta = apps.get_model(model)._meta
    assert staff_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add")).status_code == 403
    listing = staff_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")).content.decode()
    assert reverse(f"admin:{meta.app_label}_{meta.model_name}_add") not in listing


def test_every_admin_name_reads_right(staff_client):
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert "Import batches" in page and "People" in page
    for model in admin.site._registry:
        plural = str(model._meta.verbose_name_plural)
        assert not re.search(r"(chs|shs|sss|xs|persons|feedbacks|performances|states)$", plural), (model, plural)


def test_serving_now_shows_who_is_served_by_what(staff_client, two_releases, person):
    people = [give_readings(PersonFactory(), seed=60 + i) for i in range(6)]
    for p in people:
        store_version(p, "1.0.0")
        store_version(p, "2.0.0", active=True)
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    set_candidate(rollout, 2, percentage=30, shadow_percentage=70, actor="test", reason="canary and shadow")
    for p in people:
        forecast_for_person(p)
    run_pending_shadows()

    page = staff_client.get(reverse("admin:mlmodels_rollout_serving_now")).content.decode()

    assert "Serving now" in page and "release 1" in page and "release 2" in page
    assert "canary (served)" in page and "shadow (computed, never shown)" in page
    assert "get the candidate computed in shadow" in page
    assert re.search(r"<td>release 1</td><td>stable</td><td>stable</td><td>\d+</td>", page)
    assert "Nobody is pinned." in page
    change = staff_client.get(reverse("admin:mlmodels_rollout_change", args=[rollout.pk])).content.decode()
    assert "Paired (shadow) comparison" in change and "Serving now" in change
    assert logged_in(person.owner).get(reverse("admin:mlmodels_rollout_serving_now")).status_code == 302
