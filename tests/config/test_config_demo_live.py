"""The live demo (config/demo_live.py): the demo people's recordings go on as real Nightscout
uploads — real HTTP to a live server on loopback, the person's real upload secret, the real
store — wrapping around at the end of the recording, catching up in bounded batches, and never
touching anyone the demo loader did not make.

The demo loader runs for real (config.demo.load_demo); only its list of people is two small
synthetic recordings instead of five two-week ones, to keep the tests quick.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_q.models import Schedule

from config import demo, demo_live
from config.demo import DEMO_DATA_AGE, DEMO_TIME_ZONE, DemoRecording, demo_upload_secret, load_demo
from config.demo_live import (
    SCHEDULE_NAME,
    ReplayCycle,
    base_url_for_bind,
    epoch_ms,
    install_demo_schedule,
    replay_demo_task,
    replay_due_readings,
)
from config.models import DemoPerson
from observations.models import ImportBatch, Observation
from observations.nightscout.models import NightscoutUploadSecret
from observations.nightscout.secrets import lookup_for
from observations.nightscout.services import UPLOAD
from observations.services import import_frame
from observations.synthetic import generate_cgm
from predictions.models import Source
from predictions.services import forecast_for_person
from tests.factories import PersonFactory
from tests.workers import running_qcluster

MINUTE = 60_000  # ms


@pytest.fixture
def small_demo(monkeypatch):
    """load_demo's people: two synthetic recordings of `days` days (default 2)."""
    days = {"value": 2.0}

    def people(now):
        return [
            DemoRecording(
                username=f"demo{i}", display_name=f"Demo person {i} (synthetic)",
                readings=generate_cgm(days["value"], seed=i, end=now - DEMO_DATA_AGE, tz=DEMO_TIME_ZONE),
                origin="synthetic",
            )
            for i in (1, 2)
        ]

    monkeypatch.setattr(demo, "demo_people", people)
    return days


def demo_rows():
    return list(DemoPerson.objects.select_related("person__owner", "recording").order_by("pk"))


def replayed(person):
    return Observation.objects.for_person(person).filter(import_batch__source=UPLOAD).order_by("effective_at")


def recording_ms(row):
    readings = Observation.objects.filter(import_batch=row.recording).order_by("effective_at")
    return (np.array([epoch_ms(r.effective_at) for r in readings], dtype=np.int64),
            np.array([r.value_mg_dl for r in readings]))


# --- The copies' timing (pure) ------------------------------------------------------------------


def test_the_cycle_wraps_around_with_long_gaps_closed():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    # 3 hours at 5 minutes, with one 40-minute gap (a sensor change) in the middle.
    times = [i * 5 * MINUTE for i in range(18)] + [18 * 5 * MINUTE + 35 * MINUTE + i * 5 * MINUTE for i in range(18)]
    values = np.arange(len(times), dtype=float) + 100
    replay_from = start + dt.timedelta(hours=10)
    cycle = ReplayCycle.of(np.array(times) + epoch_ms(start), values, replay_from)
    assert np.all(np.diff(cycle.offsets) == 5 * MINUTE)  # the gap closed up to one interval
    assert cycle.length == 36 * 5 * MINUTE

    base = epoch_ms(replay_from)
    # Across the end of copy 0 into copy 1: the last reading, then the first again one interval on.
    around = cycle.between(base + cycle.length - 11 * MINUTE, base + cycle.length + 6 * MINUTE)
    assert [t - base for t, _ in around] == [cycle.length - 10 * MINUTE, cycle.length - 5 * MINUTE,
                                             cycle.length, cycle.length + 5 * MINUTE]
    assert [v for _, v in around] == [134, 135, 100, 101]
    # Never ahead of `until`, never at or before `after`; nothing before the replay starts.
    assert cycle.between(base - 60 * MINUTE, base - 1) == []
    assert cycle.between(base, base + 5 * MINUTE) == [(base + 5 * MINUTE, 101)]
    assert cycle.next_after(base - 1) == base
    assert cycle.next_after(base + 5 * MINUTE) == base + 10 * MINUTE
    assert cycle.next_after(base + cycle.length - 5 * MINUTE) == base + cycle.length
    # Many copies on, the same reading at the same phase.
    far = base + 7 * cycle.length + 3 * 5 * MINUTE
    assert cycle.between(far - 1, far) == [(far, 103)]


def test_the_copies_start_where_the_recording_continues_best():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    # Up from 100 to 200, down to 60, up again to 150: the recording ends at 150, rising by 10.
    values = np.concatenate([np.arange(100, 201, 10), np.arange(190, 59, -10), np.arange(70, 151, 10)]).astype(float)
    times = np.arange(len(values)) * 5 * MINUTE + epoch_ms(start)
    replay_from = start + dt.timedelta(hours=4)
    cycle = ReplayCycle.of(times, values, replay_from, smooth_join=True)
    # The first replayed reading continues the rise (160 after 150), not a jump back to 100.
    assert cycle.values[0] == 160
    # Going round: every recorded reading once per copy, one interval apart, same length.
    assert sorted(cycle.values) == sorted(values) and np.all(np.diff(cycle.offsets) == 5 * MINUTE)
    assert cycle.length == len(values) * 5 * MINUTE
    assert list(cycle.values[-6:]) == [100, 110, 120, 130, 140, 150]  # round to where it began
    assert ReplayCycle.of(times, values, replay_from).values[0] == 100  # without: from the start


def test_too_short_a_recording_is_not_replayed():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert ReplayCycle.of(np.array([0]), np.array([100.0]), start) is None
    assert ReplayCycle.of(np.array([0, 5 * MINUTE]), np.array([100.0, 101.0]), start) is None


@pytest.mark.parametrize("bind, url", [
    ("127.0.0.1:8017", "http://127.0.0.1:8017"),
    ("0.0.0.0:8000", "http://127.0.0.1:8000"),
    ("[::]:8000", "http://[::1]:8000"),
    ("[::1]:9000", "http://[::1]:9000"),
    ("localhost:8000", "http://localhost:8000"),
    ("unix:/run/glucast.sock", None),
])
def test_the_address_it_posts_to_follows_the_bind(bind, url):
    assert base_url_for_bind(bind) == url


# --- The loader's marker and secret ---------------------------------------------------------------


@pytest.mark.django_db
def test_load_demo_marks_its_people_and_installs_their_derived_upload_secret(small_demo):
    now = timezone.now()
    load_demo(now=now)
    rows = demo_rows()
    assert [r.person.owner.username for r in rows] == ["demo1", "demo2"]
    for row in rows:
        assert row.recording.source == "demo"
        newest = Observation.objects.filter(import_batch=row.recording).order_by("-effective_at").first()
        assert abs(newest.effective_at - (now - DEMO_DATA_AGE)) < dt.timedelta(seconds=1)
        assert row.replay_from == row.next_reading_at
        # one usual reading interval on (the synthetic sensor's clock jitters around 5 minutes)
        assert dt.timedelta(minutes=4.5) < row.replay_from - newest.effective_at < dt.timedelta(minutes=5.5)
        secret = demo_upload_secret(row.person)
        assert len(secret) == 32
        assert NightscoutUploadSecret.objects.get(person=row.person).lookup == lookup_for(secret)
    # A restart refreshes the same people (no new accounts, one marker each), and their
    # forecasts stop waiting for outcomes: the readings at those times are replaced.
    log = forecast_for_person(rows[0].person, source=Source.BATCH)
    assert log.outcome_pending
    load_demo()
    log.refresh_from_db()
    assert not log.outcome_pending and log.outcomes_next_at is None
    assert DemoPerson.objects.count() == 2 and get_user_model().objects.filter(username__startswith="demo").count() == 2


@pytest.mark.django_db
def test_load_demo_leaves_a_real_account_with_a_demo_name_alone(small_demo):
    real = PersonFactory(owner__username="demo1")
    import_frame(real, generate_cgm(1, seed=9, tz=real.time_zone), source="csv")  # their own readings
    before = set(Observation.objects.for_person(real).values_list("id", "value_mg_dl"))
    summary = load_demo()
    assert [row["username"] for row in summary if "skipped" in row] == ["demo1"]
    assert set(Observation.objects.for_person(real).values_list("id", "value_mg_dl")) == before
    assert not DemoPerson.objects.filter(person=real).exists()
    assert not NightscoutUploadSecret.objects.filter(person=real).exists()
    assert [r.person.owner.username for r in demo_rows()] == ["demo2"]


# --- The replay over real HTTP --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_due_readings_arrive_over_http_with_the_persons_secret_and_never_ahead_of_now(small_demo, live_server):
    now = timezone.now()
    load_demo(now=now - dt.timedelta(hours=1))  # loaded an hour ago: about 12 readings are due
    real = PersonFactory()
    # Someone else's import that happens to say "demo" (as tests and the import helper may):
    # not a demo person, never replayed.
    import_frame(real, generate_cgm(1, seed=7, end=now - dt.timedelta(hours=2), tz=real.time_zone))
    real_before = Observation.objects.for_person(real).count()

    results = replay_due_readings(base_url=live_server.url, now=now)

    assert set(results) == {"demo1", "demo2"}
    for row in demo_rows():
        got = list(replayed(row.person))
        result = results[row.person.owner.username]
        assert result["created"] == len(got) == result["due"] and 10 <= len(got) <= 13, result
        assert all(r.effective_at <= now for r in got) and got[0].effective_at == row.replay_from
        assert all(r.device == demo_live.DEVICE for r in got)
        # The recording continued where the cycle puts it (copy 0 starts at its best continuation).
        times, values = recording_ms(row)
        cycle = ReplayCycle.of(times, values, row.replay_from, smooth_join=True)
        assert [r.value_mg_dl for r in got] == [round(v) for v in cycle.values[: len(got)]]
        secret_row = NightscoutUploadSecret.objects.get(person=row.person)
        assert secret_row.last_used_at is not None  # authenticated by their upload secret
        row.refresh_from_db()
        assert now < row.next_reading_at <= now + dt.timedelta(minutes=5)
    assert Observation.objects.for_person(real).count() == real_before
    assert not ImportBatch.objects.for_person(real).filter(source=UPLOAD).exists()

    # Nobody is due again until their next reading's time: the next run sends nothing.
    # (Just before the earliest next reading, wherever the clock put it; never a fixed 30 s on.)
    earliest = min(row.next_reading_at for row in demo_rows())
    assert replay_due_readings(base_url=live_server.url, now=max(now, earliest - dt.timedelta(milliseconds=1))) == {}
    # Forced to run anyway, nothing new is due (the stored readings are the cursor).
    DemoPerson.objects.update(next_reading_at=now)
    again = replay_due_readings(base_url=live_server.url, now=now)
    assert all(r["due"] == 0 and r["created"] == 0 for r in again.values()), again
    # Sending the same readings twice stores them once (idempotent storage behind the surface).
    row = demo_rows()[0]
    sent = [demo_live.as_entry(epoch_ms(o.effective_at), o.value_mg_dl, row.person.tz) for o in replayed(row.person)[:3]]
    counts = demo_live.post_entries(base_url=live_server.url, secret=demo_upload_secret(row.person), entries=sent)
    assert counts == {"created": 0, "duplicates": 3}


@pytest.mark.django_db(transaction=True)
def test_the_replay_wraps_around_the_end_of_the_recording(small_demo, live_server):
    small_demo["value"] = 1.0  # a one-day recording
    now = timezone.now()
    load_demo(now=now - dt.timedelta(hours=30))  # copy 0 ended about 6 hours ago
    replay_due_readings(base_url=live_server.url, now=now)
    for row in demo_rows():
        times, values = recording_ms(row)
        cycle = ReplayCycle.of(times, values, row.replay_from, smooth_join=True)
        boundary = epoch_ms(row.replay_from) + cycle.length  # where copy 1 starts
        got = [(epoch_ms(o.effective_at), o.value_mg_dl) for o in replayed(row.person)]
        before = [item for item in got if item[0] < boundary]
        after = [item for item in got if item[0] >= boundary]
        assert before and after, "readings on both sides of the wrap"
        # The newest day of what was due, exactly where the cycle puts it.
        assert got == [(t, round(v)) for t, v in cycle.between(epoch_ms(now - demo_live.CATCH_UP), epoch_ms(now))]
        # After the wrap: the same readings again, from the same place in the recording.
        assert after[0] == (boundary, round(cycle.values[0]))
        assert [v for _, v in after[:5]] == [round(v) for v in cycle.values[:5]]


@pytest.mark.django_db(transaction=True)
def test_a_long_absence_is_caught_up_in_bounded_batches(small_demo, live_server, monkeypatch):
    monkeypatch.setattr(demo_live, "MAX_READINGS_PER_RUN", 50)
    monkeypatch.setattr(demo_live, "ENTRIES_PER_POST", 20)
    now = timezone.now()
    load_demo(now=now - dt.timedelta(days=3, hours=5))  # the machine slept for three days
    woke = now - dt.timedelta(hours=5)
    results = replay_due_readings(base_url=live_server.url, now=woke)
    for row in demo_rows():
        result = results[row.person.owner.username]
        assert result["due"] == 50 and result["posts"] == 3 and result["created"] == 50, result
        assert result["left_out"] > 200  # the rest of the last day stays a gap, like a phone that was off
        got = list(replayed(row.person))
        assert len(got) == 50
        assert woke - got[-1].effective_at < dt.timedelta(minutes=16)  # the newest readings: forecasts are current
    # With the real cap, the next run (five hours on) sends everything due since.
    monkeypatch.setattr(demo_live, "MAX_READINGS_PER_RUN", 300)
    results = replay_due_readings(base_url=live_server.url, now=now)
    for result in results.values():
        assert 50 <= result["created"] <= 62 and result["left_out"] == 0, result


@pytest.mark.django_db(transaction=True)
def test_a_server_that_is_down_is_retried_on_the_next_run(small_demo, live_server):
    now = timezone.now()
    load_demo(now=now - dt.timedelta(minutes=30))
    results = replay_due_readings(base_url="http://127.0.0.1:9", now=now)  # nothing listens there
    assert all("error" in r for r in results.values()), results
    assert all(row.next_reading_at <= now for row in demo_rows())  # still due
    results = replay_due_readings(base_url=live_server.url, now=now)
    assert all(r["created"] >= 5 for r in results.values()), results


# --- The off switch and the schedule ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_setting_turns_it_off(small_demo, live_server, settings):
    load_demo(now=timezone.now() - dt.timedelta(hours=1))
    install_demo_schedule(bind="127.0.0.1:8017")
    assert Schedule.objects.filter(name=SCHEDULE_NAME).exists()
    settings.GLUCAST_DEMO_LIVE = False
    assert replay_demo_task(live_server.url) == {"off": "GLUCAST_DEMO_LIVE is off"}
    assert not ImportBatch.objects.filter(source=UPLOAD).exists()
    assert install_demo_schedule(bind="127.0.0.1:8017") is None
    assert not Schedule.objects.filter(name=SCHEDULE_NAME).exists()


@pytest.mark.django_db
def test_serve_installs_the_schedule_at_its_own_address_only_with_demo_people(small_demo):
    assert install_demo_schedule(bind="0.0.0.0:8017") is None  # no demo people: no schedule
    load_demo()
    schedule = install_demo_schedule(bind="0.0.0.0:8017")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (demo_live.TASK, "I", 1)
    assert schedule.kwargs == "{'base_url': 'http://127.0.0.1:8017'}"
    install_demo_schedule(bind="127.0.0.1:9001")  # another start, another port
    assert Schedule.objects.get(name=SCHEDULE_NAME).kwargs == "{'base_url': 'http://127.0.0.1:9001'}"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_schedule_and_the_readings_arrive(small_demo, live_server, artifact_root, tmp_path):
    now = timezone.now()
    load_demo(now=now - dt.timedelta(minutes=40))
    real = PersonFactory()
    import_frame(real, generate_cgm(1, seed=5, end=now - dt.timedelta(hours=1), tz=real.time_zone), source="csv")
    real_before = Observation.objects.for_person(real).count()
    bind = live_server.url.removeprefix("http://")
    install_demo_schedule(bind=bind)
    log_path = tmp_path / "qcluster.log"
    with running_qcluster(artifact_root=artifact_root, log_path=log_path) as process:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(replayed(row.person).count() >= 7 for row in demo_rows()):
                break
            if process.poll() is not None:
                pytest.fail(f"qcluster exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        else:
            pytest.fail(f"no replayed readings after 120 s\n{log_path.read_text()[-3000:]}")
    assert Observation.objects.for_person(real).count() == real_before
