import datetime as dt

import pytest
from django.utils import timezone

from observations.services import import_frame
from observations.synthetic import generate_cgm


def load_readings(person, days: int = 14, *, seed: int = 1, age_min: float = 2.0, end=None):
    """Synthetic readings for `person` ending `age_min` minutes ago, through the import service."""
    end = end or timezone.now() - dt.timedelta(minutes=age_min)
    return import_frame(person, generate_cgm(days, seed=seed, end=end, tz=person.time_zone), source="csv",
                        filename=f"synthetic-{seed}.csv")


@pytest.fixture
def person_with_data(person):
    load_readings(person)
    return person


def train_model(person):
    """A real trained model version for `person` (short time budget), with its artifact files."""
    from mlmodels.services import train_person

    job = train_person(person, trigger="operator", time_budget_s=3.0)
    assert job.status == "succeeded", (job.status, job.reason, job.detail, job.error)
    return job.model


@pytest.fixture
def logged_in(client, person):
    # UserFactory sets the password after saving: save it, or the session's auth hash would
    # not match the stored user and the login would be dropped on the next request.
    person.owner.save()
    client.force_login(person.owner)
    return client
