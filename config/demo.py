"""Demo people for a first look at glucast.

Where the shared Broll et al. (2021) file exists (five real people with type 2 diabetes), each
subject becomes one login. Elsewhere — on a user's own machine — five synthetic people come from
`observations.synthetic.generate_cgm`. Either way the readings are shifted so the last one is a
few minutes old: a forecast needs fresh data, and a demo that only says "your data is stale"
shows nothing. The shift is one constant per person, so the series itself is unchanged (only its
clock time moves), and it is re-applied on every start so the demo stays live.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from observations.episodes import refresh_windows
from observations.models import GlucoseWindow, ImportBatch
from observations.services import delete_import, import_broll_csv, import_frame
from observations.synthetic import generate_cgm
from persons.models import Person
from persons.services import create_person

DEMO_TIME_ZONE = "Europe/Berlin"
DEMO_SOURCE = "demo"
DEMO_DATA_AGE = dt.timedelta(minutes=2)


def broll_csv_path() -> Path:
    return Path(settings.GLUCAST_SHARED_DATA) / "broll2021_cgm.csv"


@dataclass
class DemoPerson:
    username: str
    display_name: str
    readings: pd.DataFrame  # time (UTC), glucose_mg_dl
    origin: str


def demo_people(now: dt.datetime) -> list[DemoPerson]:
    path = broll_csv_path()
    if path.exists():
        return _broll_people(path, now)
    return [
        DemoPerson(
            username=f"demo{i}",
            display_name=f"Demo person {i} (synthetic)",
            readings=generate_cgm(14, seed=i, end=now - DEMO_DATA_AGE, tz=DEMO_TIME_ZONE,
                                  profile="t1d" if i == 5 else "t2d"),
            origin="synthetic",
        )
        for i in range(1, 6)
    ]


def _broll_people(path: Path, now: dt.datetime) -> list[DemoPerson]:
    people = []
    for subject, frame in import_broll_csv(path).items():
        number = subject.split()[-1]
        local = frame["time"].dt.tz_localize(DEMO_TIME_ZONE, ambiguous="NaT", nonexistent="shift_forward")
        readings = pd.DataFrame({"time": local.dt.tz_convert("UTC"), "glucose_mg_dl": frame["glucose_mg_dl"]})
        people.append(
            DemoPerson(
                username=f"subject{number}",
                display_name=f"Broll subject {number}",
                readings=_shift_to_end_at(readings.dropna(), now - DEMO_DATA_AGE),
                origin="Broll et al. (2021)",
            )
        )
    return people


def _shift_to_end_at(readings: pd.DataFrame, end: dt.datetime) -> pd.DataFrame:
    shifted = readings.copy()
    shifted["time"] = shifted["time"] + (pd.Timestamp(end) - shifted["time"].max())
    return shifted


def demo_password() -> str:
    return settings.GLUCAST_DEMO_PASSWORD


@transaction.atomic
def load_demo(now: dt.datetime | None = None) -> list[dict]:
    """Create (or refresh) the demo people and their readings; returns login details."""
    now = now or dt.datetime.now(dt.timezone.utc)
    User = get_user_model()
    summary = []
    for demo in demo_people(now):
        user = User.objects.filter(username=demo.username).first()
        if user is None:
            person, _, token = create_person(
                demo.username, password=demo_password(), display_name=demo.display_name,
                time_zone=DEMO_TIME_ZONE,
            )
        else:
            person = Person.objects.get(owner=user)
            token = user.auth_token.key
        _replace_readings(person, demo.readings)
        summary.append(
            {"username": demo.username, "password": demo_password(), "token": token,
             "readings": len(demo.readings), "origin": demo.origin, "person": person}
        )
    return summary


def _replace_readings(person: Person, readings: pd.DataFrame) -> None:
    # Demo data only: the demo's own imports are replaced wholesale so they end "now" again.
    for batch in ImportBatch.objects.for_person(person).filter(source=DEMO_SOURCE):
        delete_import(person, batch)
    import_frame(person, readings, source=DEMO_SOURCE, filename="demo")
    GlucoseWindow.objects.for_person(person).delete()
    refresh_windows(person)
