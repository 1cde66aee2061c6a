"""The shared Broll et al. (2021) file end to end: 13,866 readings of 5 people."""

import pandas as pd

from observations.models import ImportBatch, Observation
from observations.readings import readings_frame
from observations.services import import_broll_csv, import_frame
from tests.factories import PersonFactory


def test_broll_file_imports_end_to_end(db, broll_csv_path):
    subjects = import_broll_csv(broll_csv_path)
    assert len(subjects) == 5
    assert sum(len(frame) for frame in subjects.values()) == 13_866
    total_created = 0
    for subject, frame in subjects.items():
        # Europe/Berlin (the product default) has no DST change inside the file's dates. In a US
        # zone, Subject 5 crosses 2015-03-08 with a device clock that did not spring forward, so
        # 12 wall times would fall in the non-existent hour and collide with the next hour's.
        person = PersonFactory(display_name=subject, time_zone="Europe/Berlin")
        batch = import_frame(person, frame, source="demo", filename=broll_csv_path.name)
        assert batch.n_duplicates == 0, subject
        total_created += batch.n_created
        stored = readings_frame(person)
        assert len(stored) == len(frame)
        # the first local time, read in the person's zone, is stored as the right UTC instant
        first_local = pd.Timestamp(frame["time"].iloc[0]).tz_localize("Europe/Berlin")
        assert stored["time"].iloc[0] == first_local.tz_convert("UTC")
        assert stored["glucose_mg_dl"].tolist() == frame["glucose_mg_dl"].astype(float).tolist()
    assert total_created == 13_866
    assert Observation.objects.count() == 13_866
    assert ImportBatch.objects.count() == 5


def test_broll_reimport_creates_no_duplicates(db, broll_csv_path):
    subject, frame = next(iter(import_broll_csv(broll_csv_path).items()))
    person = PersonFactory()
    first = import_frame(person, frame)
    second = import_frame(person, frame)
    assert second.n_created == 0 and second.n_duplicates == first.n_created == len(frame)
