"""Shared set-up for the model lifecycle tests: real trained artifacts (one training per session,
the serving tests' helper), model versions of several releases, people with recent readings,
staff and non-staff users."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from mlmodels.models import MLModel, ModelStatus
from mlmodels.rollouts import forget_serving_config
from mlmodels.storage import save_artifacts
from predictions.cache import reset_forecaster_cache
from tests.factories import UserFactory
from tests.predictions.conftest import recent_readings, store_readings, trained_model_files

__all__ = ["make_model", "give_readings", "logged_in", "recent_readings", "store_readings"]


def make_model(person, version: str, *, active: bool = False, status=ModelStatus.READY, parent=None,
               metrics=None, files: bool = True) -> MLModel:
    """One version of a person's model; with `files`, real artifacts stored and SHA-256 recorded."""
    trained, algorithm = trained_model_files()
    major, minor, patch = (int(p) for p in version.split("."))
    row = MLModel.objects.create(
        person=person, version=version, version_major=major, version_minor=minor,
        version_patch=patch, algorithm=algorithm, status=status, trained_at=timezone.now(),
        metrics=metrics or {}, parent=parent, is_active=False,
    )
    if files:
        save_artifacts(row, trained, {"algorithm": algorithm, "version": version}, "trained in tests\n")
    if active:
        MLModel.objects.filter(person=person, model_type=row.model_type, is_active=True).update(is_active=False)
        row.is_active = True
    row.save()
    return row


def give_readings(person, *, hours: float = 4, seed: int = 1):
    store_readings(person, recent_readings(hours, seed=seed))
    return person


@pytest.fixture(autouse=True)
def _fresh_process_state():
    reset_forecaster_cache()
    forget_serving_config()
    yield
    reset_forecaster_cache()
    forget_serving_config()


def logged_in(user) -> Client:
    """A browser-like client with `user` logged in.

    The factory sets the password after saving; saving again keeps the session's password hash
    valid (otherwise Django logs the session out on the next request).
    """
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_user(db):
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff_user):
    return logged_in(staff_user)
