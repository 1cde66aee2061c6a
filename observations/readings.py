"""Readings out of the store, as the frame every consumer (training, windows, pages) reads.

Its own module so the import services and the similar-episode windows can both use it without
importing each other.
"""

import pandas as pd
from django.db.models import Max

from observations.models import Observation


def readings_frame(person, *, start=None, end=None, kind=Observation.Kind.CGM, batch=None) -> pd.DataFrame:
    """One person's usable readings as a frame: time (UTC), glucose_mg_dl, at_sensor_limit, id;
    with `batch`, those of that one import only.

    `entered-in-error` readings are excluded here, so no caller can forget to.
    """
    rows = Observation.objects.for_person(person)
    if batch is not None:
        rows = rows.filter(import_batch=batch)
    rows = (
        rows.usable()
        .filter(kind=kind)
        .in_range(start, end)
        .order_by("effective_at")
        .values_list("id", "effective_at", "value_mg_dl", "at_sensor_limit")
    )
    frame = pd.DataFrame.from_records(
        list(rows), columns=["id", "time", "glucose_mg_dl", "at_sensor_limit"]
    )
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["glucose_mg_dl"] = frame["glucose_mg_dl"].astype(float)
    frame["at_sensor_limit"] = frame["at_sensor_limit"].astype(bool)
    return frame


def newest_reading_at(person, *, kind=Observation.Kind.CGM):
    """When the person's newest usable reading was taken (None: no readings)."""
    return (
        Observation.objects.for_person(person).usable().filter(kind=kind)
        .aggregate(newest=Max("effective_at"))["newest"]
    )
