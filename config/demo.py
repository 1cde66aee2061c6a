"""Demo people for a first look at glucast.

Where the shared Broll et al. (2021) file exists (five real people with type 2 diabetes), each
subject becomes one login. Elsewhere — on a user's own machine — five synthetic people come from
`observations.synthetic.generate_cgm`. Either way the readings are shifted so the last one is a
few minutes old: a forecast needs fresh data, and a demo that only says "your data is stale"
shows nothing. The shift is one constant per person, so the series itself is unchanged (only its
clock time moves), and it is re-applied on every start. While `manage.py serve` runs, the live
replay (config/demo_live.py) continues each recording through the Nightscout upload surface.

Which people are the demo's is recorded in config.models.DemoPerson, made here and nowhere else:
a start refreshes only those (an account of a demo name that the loader did not make is left
alone), and replaces their readings, the replay's uploads of the last run included.
"""

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from config.models import DemoPerson
from observations.episodes import refresh_windows
from observations.models import GlucoseWindow, ImportBatch
from observations.nightscout.secrets import SECRET_BYTES, issue_secret
from observations.nightscout.services import UPLOAD
from observations.services import delete_import, import_broll_csv, import_frame
from observations.synthetic import generate_cgm
from persons.models import Person
from persons.services import create_person
from predictions.outcomes import stop_awaiting_outcomes

DEMO_TIME_ZONE = "Europe/Berlin"
DEMO_SOURCE = "demo"
DEMO_DATA_AGE = dt.timedelta(minutes=2)
# The filename of the demo import: with DEMO_SOURCE, how a demo person made before the marker
# table existed is recognised (and adopted) on the next start.
DEMO_FILENAME = "demo"


def broll_csv_path() -> Path:
    return Path(settings.GLUCAST_SHARED_DATA) / "broll2021_cgm.csv"


@dataclass
class DemoRecording:
    """One demo login to be made and the readings it starts with."""

    username: str
    display_name: str
    readings: pd.DataFrame  # time (UTC), glucose_mg_dl
    origin: str


def demo_people(now: dt.datetime) -> list[DemoRecording]:
    path = broll_csv_path()
    if path.exists():
        return _broll_people(path, now)
    return [
        DemoRecording(
            username=f"demo{i}",
            display_name=f"Demo person {i} (synthetic)",
            readings=generate_cgm(14, seed=i, end=now - DEMO_DATA_AGE, tz=DEMO_TIME_ZONE,
                                  profile="t1d" if i == 5 else "t2d"),
            origin="synthetic",
        )
        for i in range(1, 6)
    ]


def _broll_people(path: Path, now: dt.datetime) -> list[DemoRecording]:
    people = []
    for subject, frame in import_broll_csv(path).items():
        number = subject.split()[-1]
        local = frame["time"].dt.tz_localize(DEMO_TIME_ZONE, ambiguous="NaT", nonexistent="shift_forward")
        readings = pd.DataFrame({"time": local.dt.tz_convert("UTC"), "glucose_mg_dl": frame["glucose_mg_dl"]})
        people.append(
            DemoRecording(
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


def demo_upload_secret(person: Person) -> str:
    """The demo person's Nightscout upload secret, derived from SECRET_KEY: the live replay
    presents it like an uploader does, and only its hash is stored, as for everyone. 32 URL-safe
    characters like a generated secret (never 40 hex digits)."""
    message = f"glucast demo upload secret {person.pk}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:SECRET_BYTES]).decode("ascii")


def reading_interval(times: pd.Series) -> dt.timedelta:
    """The recording's usual spacing (the median), five minutes where it cannot tell."""
    spacing = times.sort_values().diff().dropna()
    if spacing.empty:
        return dt.timedelta(minutes=5)
    return pd.Timedelta(spacing.median()).to_pytimedelta()


def is_demo_person(person: Person) -> bool:
    """Made by this loader: marked, or (before the marker existed) holding the loader's import."""
    return (
        DemoPerson.objects.for_person(person).exists()
        or ImportBatch.objects.for_person(person).filter(source=DEMO_SOURCE, filename=DEMO_FILENAME).exists()
    )


@transaction.atomic
def load_demo(now: dt.datetime | None = None) -> list[dict]:
    """Create (or refresh) the demo people and their readings; returns login details.

    An existing account of a demo name that this loader did not make is left alone (its row in
    the summary says so, `skipped`)."""
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
            if not is_demo_person(person):
                summary.append({"username": demo.username, "person": person,
                                "skipped": "an account of this name exists that the demo did not make"})
                continue
            token = user.auth_token.key
        batch = _replace_readings(person, demo.readings)
        issue_secret(person=person, secret=demo_upload_secret(person))
        replay_from = demo.readings["time"].max().to_pydatetime() + reading_interval(demo.readings["time"])
        # whole milliseconds, as the replayed entries' `date` carries them
        replay_from = replay_from.replace(microsecond=replay_from.microsecond // 1000 * 1000)
        DemoPerson.objects.update_or_create(
            person=person,
            defaults={"origin": demo.origin, "recording": batch, "replay_from": replay_from,
                      "next_reading_at": replay_from, "loaded_at": now},
        )
        summary.append(
            {"username": demo.username, "password": demo_password(), "token": token,
             "readings": len(demo.readings), "origin": demo.origin, "person": person}
        )
    return summary


def _replace_readings(person: Person, readings: pd.DataFrame) -> ImportBatch:
    # Demo people only: their imports are replaced wholesale so they end "now" again, and the
    # last run's replayed uploads go too (they continued the recording as it was shifted then).
    # Forecasts still waiting for outcomes stop waiting: the readings at their times are not
    # the ones they forecast any more, so matching them would score nonsense.
    for batch in ImportBatch.objects.for_person(person).filter(source__in=[DEMO_SOURCE, UPLOAD]):
        delete_import(person, batch)
    stop_awaiting_outcomes(person)
    batch = import_frame(person, readings, source=DEMO_SOURCE, filename=DEMO_FILENAME)
    GlucoseWindow.objects.for_person(person).delete()
    refresh_windows(person)
    return batch
