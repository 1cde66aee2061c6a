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
