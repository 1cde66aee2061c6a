"""The live demo: while `manage.py serve` runs, the demo people's recordings go on, one reading
every five minutes, as live uploads to glucast's own Nightscout surface.

Why: a demo loaded once goes stale — half an hour after `bin/run` every dashboard would say
"No forecast right now", and no forecast would ever meet its outcome. With the replay the
forecasts stay current, the outcome matching scores them, realized accuracy and the rollout arms
fill in, exactly as for a person whose phone uploads.

What is replayed: each demo person's recording (the import config.demo.load_demo made, shifted
to end two minutes before the start) continues with copies of itself, one after another, from
`DemoPerson.replay_from` on (one reading interval after the recording's last reading), so it
never runs dry. A copy starts at the recorded reading that best continues the last one (nearest
in value and trend) and goes round the recording from there, so there is no jump right after a
start (forecasts made then would be scored against it); the one jump, from the recording's end
to its start, comes once a cycle. In the copies, a recorded gap longer than MAX_GAP (a sensor change, subject 2's
week without a sensor) is closed up to one reading interval: the readings are the recorded ones,
and the demo is never without a forecast. A reading is posted once its time has come, never
ahead of now (the upload surface rejects future readings).

How it arrives: a real HTTP POST of Nightscout entries, shaped as xDrip+ sends them, to
/ns/api/v1/entries of the running web server (the address `serve` binds, kept in the schedule's
arguments), with the person's upload secret as the `api-secret` header (SHA-1 hex, as xDrip+
sends it). So the demo exercises the surface a phone uses — authentication, throttle, body
limits, validation, the idempotent store and the window refresh it schedules — and a broken
upload path shows in the demo instead of being bypassed.

Robust: the schedule checks every minute (each reading arrives within a minute of its time, as
from a phone; a person is looked at only once their next reading is due). What is due is
everything after the person's newest stored reading up to now; after the machine slept or the
server was down, the newest CATCH_UP of it (at most MAX_READINGS_PER_RUN readings, in POSTs of
ENTRIES_PER_POST) is sent and older due readings stay a gap, like a phone that was off. A failed
POST is retried on the next run; storage is idempotent, so a reading sent twice (two workers,
a retry) is stored once.

Never anyone else: only people marked by the demo loader (config.models.DemoPerson) are
replayed, each with their own secret, which authenticates as that person only.
GLUCAST_DEMO_LIVE=0 turns it off (no schedule is installed and the task does nothing).

    install_demo_schedule(*, bind) -> Schedule | None    `serve` at start
    replay_due_readings(*, base_url, now=None) -> dict   one run (the task, in the everyone context)
    ReplayCycle.of(times, values, replay_from)           the copies' timing, pure
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

import numpy as np
import urllib3
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from config.demo import demo_upload_secret
from config.models import DemoPerson
from mlmodels.schedules import install_schedules
from observations.nightscout.secrets import HEADER, sha1_hex
from observations.readings import newest_reading_at, readings_frame
from persons.row_security import everyone

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "glucast: demo live replay"
TASK = "config.demo_live.replay_demo_task"
CHECK_EVERY_MIN = 1
# Recorded gaps longer than this are closed up in the replayed copies: a forecast needs two
# readings at most 20 minutes apart within the last 30 minutes, and a reading arrives up to a
# minute late, so 15-minute spacing (subject 1's recording has it) could fall short.
MAX_GAP = timedelta(minutes=10)
# A catch-up sends at most the newest day of what is due, and never more than this many readings.
CATCH_UP = timedelta(hours=24)
MAX_READINGS_PER_RUN = 300
# Per POST: well below GLUCAST_NIGHTSCOUT_MAX_ENTRIES and the body limit, as a phone's backlog is sent.
ENTRIES_PER_POST = 100
# A recording shorter than this is not replayed (its copies would repeat every few minutes).
MIN_CYCLE = timedelta(hours=1)
DEVICE = "glucast demo replay"
ENTRIES_PATH = "/ns/api/v1/entries"
TIMEOUT = urllib3.Timeout(connect=5.0, read=60.0)

class ReplayFailed(Exception):
    """The web server did not take a POST (down, refused, an error answer): retried next run."""


# --- When the replayed readings are due --------------------------------------------------------


@dataclass(frozen=True)
class ReplayCycle:
    """The recording as the replay places it: copy k (k = 0, 1, ...) puts reading i at
    replay_from + k * length + offsets[i], in whole epoch milliseconds (what an entry's `date`
    carries, so a stored reading compares exactly with the instant it was posted for), with long
    gaps closed up."""

    replay_from: int  # epoch ms
    offsets: np.ndarray  # ms from the start of a copy, increasing, offsets[0] = 0
    values: np.ndarray  # mg/dL
    length: int  # ms of one copy (the last offset + one reading interval)

    @classmethod
    def of(cls, times_ms: np.ndarray, values: np.ndarray, replay_from: datetime, *,
           smooth_join: bool = False) -> ReplayCycle | None:
        """From the recording's times (epoch ms, increasing) and values; None when there is too
        little of it to replay. With `smooth_join` the copies start not at the recording's first
        reading but at the one that best continues its last (nearest in value and in the change
        from the reading before), and go round from there: the jump from the recording's end to
        its start then falls once a cycle, mid-copy, instead of right after every start."""
        times_ms = np.asarray(times_ms, dtype=np.int64)
        values = np.asarray(values, dtype=float)
        if len(times_ms) < 2:
            return None
        spacing = np.diff(times_ms)
        step = int(np.median(spacing))
        spacing = np.where(spacing > MAX_GAP // timedelta(milliseconds=1), step, spacing)
        first = _best_continuation(values) if smooth_join else 0
        order = np.concatenate([np.arange(first, len(values)), np.arange(0, first)])
        # the spacing before each reading of the copy after its first: recorded (gaps closed),
        # and one interval where the copy goes round from the recording's end to its start
        before = np.array([spacing[i - 1] if i > 0 else step for i in order[1:]], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(before)]).astype(np.int64)
        length = int(offsets[-1]) + step
        if length < MIN_CYCLE // timedelta(milliseconds=1):
            return None
        return cls(epoch_ms(replay_from), offsets, values[order], length)

    def between(self, after: int, until: int) -> list[tuple[int, float]]:
        """(epoch ms, mg/dL) of the replayed readings with after < time <= until, in order."""
        out: list[tuple[int, float]] = []
        first = max(0, (after - self.replay_from) // self.length)
        last = (until - self.replay_from) // self.length
        for k in range(first, last + 1):
            start = self.replay_from + k * self.length
            lo = int(np.searchsorted(self.offsets, after - start, side="right"))
            hi = int(np.searchsorted(self.offsets, until - start, side="right"))
            out.extend((start + int(self.offsets[i]), float(self.values[i])) for i in range(lo, hi))
        return out

    def next_after(self, moment: int) -> int:
        """The time (epoch ms) of the first replayed reading after `moment`."""
        if moment < self.replay_from:
            return self.replay_from
        k = (moment - self.replay_from) // self.length
        start = self.replay_from + k * self.length
        i = int(np.searchsorted(self.offsets, moment - start, side="right"))
        return start + int(self.offsets[i]) if i < len(self.offsets) else start + self.length


def _best_continuation(values: np.ndarray) -> int:
    """Where a copy starts: after the recorded reading (not the last) most like the recording's
    last one, nearest in value and in the change from the reading before it."""
    last, change = values[-1], values[-1] - values[-2]
    candidates = np.arange(1, len(values) - 1)
    if len(candidates) == 0:
        return 0
    cost = np.abs(values[candidates] - last) + np.abs((values[candidates] - values[candidates - 1]) - change)
    return int(candidates[np.argmin(cost)]) + 1


def epoch_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=dt_timezone.utc)


def _cycle(demo: DemoPerson) -> ReplayCycle | None:
    frame = readings_frame(demo.person, batch=demo.recording)
    times_ms = frame["time"].map(epoch_ms).to_numpy(dtype=np.int64)
    return ReplayCycle.of(times_ms, frame["glucose_mg_dl"].to_numpy(), demo.replay_from, smooth_join=True)


# --- Sending them as an uploader does ----------------------------------------------------------


def as_entry(moment: int, value: float, tz) -> dict:
    """One reading as xDrip+'s REST upload writes it (NightscoutUploader.populateV1APIBGEntry):
    epoch-ms `date`, a local `dateString` with offset, whole mg/dL `sgv`."""
    local = from_epoch_ms(moment).astimezone(tz)
    text = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")
    return {"device": DEVICE, "date": moment, "dateString": text, "sysTime": text,
            "sgv": int(round(value)), "type": "sgv"}


def post_entries(*, base_url: str, secret: str, entries: list[dict], http: urllib3.PoolManager | None = None) -> dict:
    """POST entries to the Nightscout surface (over `http`'s kept-alive connection, or a new
    one); returns the counts glucast answered with. Raises ReplayFailed when the server cannot be
    reached or does not answer 200."""
    if http is None:
        with urllib3.PoolManager(num_pools=1, maxsize=1) as own:
            return post_entries(base_url=base_url, secret=secret, entries=entries, http=own)
    try:
        response = http.request(
            "POST", base_url.rstrip("/") + ENTRIES_PATH, body=json.dumps(entries).encode("utf-8"),
            headers={"Content-Type": "application/json", HEADER: sha1_hex(secret), "User-Agent": DEVICE},
            timeout=TIMEOUT, retries=False, redirect=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise ReplayFailed(f"{base_url} could not be reached ({exc.__class__.__name__}: {str(exc)[:160]})") from None
    if response.status != 200:
        raise ReplayFailed(f"{base_url}{ENTRIES_PATH} answered {response.status}: {response.data[:300]!r}")
    return {name: int(response.headers.get(f"X-Glucast-{name.title()}", 0)) for name in ("created", "duplicates")}


def replay_person(demo: DemoPerson, *, base_url: str, now: datetime, http: urllib3.PoolManager) -> dict:
    """Post the demo person's due readings (oldest first, in bounded POSTs); move their next due
    time on once everything due was taken."""
    cycle = _cycle(demo)
    if cycle is None:
        return {"skipped": "the recording is too short to replay"}
    newest = newest_reading_at(demo.person)
    after = max(now - CATCH_UP, newest) if newest else now - CATCH_UP
    due = cycle.between(epoch_ms(after), epoch_ms(now))
    left_out = max(0, len(due) - MAX_READINGS_PER_RUN)
    due = due[left_out:]
    tz = demo.person.tz
    secret = demo_upload_secret(demo.person)
    result = {"due": len(due), "left_out": left_out, "created": 0, "duplicates": 0, "posts": 0}
    for start in range(0, len(due), ENTRIES_PER_POST):
        entries = [as_entry(moment, value, tz) for moment, value in due[start : start + ENTRIES_PER_POST]]
        counts = post_entries(base_url=base_url, secret=secret, entries=entries, http=http)
        result["posts"] += 1
        result["created"] += counts["created"]
        result["duplicates"] += counts["duplicates"]
    demo.next_reading_at = from_epoch_ms(cycle.next_after(epoch_ms(now)))
    demo.save(update_fields=["next_reading_at"])
    return result


def replay_due_readings(*, base_url: str, now: datetime | None = None) -> dict:
    """One run over the demo people whose next reading is due: {username: what happened}.
    A person whose POST fails is reported and retried next run; the others go on."""
    now = now or timezone.now()
    results = {}
    due = (
        DemoPerson.objects.replaying().filter(next_reading_at__lte=now)
        .select_related("person__owner", "recording").order_by("pk")
    )
    # One connection for the run, closed at its end (nothing is held open between runs).
    with urllib3.PoolManager(num_pools=1, maxsize=1) as http:
        for demo in due:
            name = demo.person.owner.username
            try:
                results[name] = replay_person(demo, base_url=base_url, now=now, http=http)
            except ReplayFailed as exc:
                logger.warning("Demo replay for %s: %s", name, exc)
                results[name] = {"error": str(exc)}
    posted = sum(r.get("created", 0) for r in results.values())
    if posted:
        logger.info("Demo replay: %d readings uploaded for %d demo people", posted, len(results))
    return results


def replay_demo_task(base_url: str) -> dict:
    """The schedule's entry point (every minute, in the worker that `serve` starts)."""
    if not settings.GLUCAST_DEMO_LIVE:
        return {"off": "GLUCAST_DEMO_LIVE is off"}
    with everyone("demo live replay"):
        return replay_due_readings(base_url=base_url)


# --- Installed by serve ------------------------------------------------------------------------


def base_url_for_bind(bind: str) -> str | None:
    """Where this machine reaches a gunicorn bound to `bind` (host:port; a wildcard host is
    reached on loopback). None for a Unix socket or file descriptor bind."""
    if bind.startswith(("unix:", "fd://")) or ":" not in bind:
        return None
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def install_demo_schedule(*, bind: str) -> Schedule | None:
    """`serve` at start: the every-minute replay, pointed at this server's address — when the
    setting is on and there are demo people; otherwise the schedule is removed."""
    base_url = base_url_for_bind(bind)
    with everyone("serve: are there demo people to replay"):
        has_demo = DemoPerson.objects.replaying().exists()
    if not settings.GLUCAST_DEMO_LIVE or not has_demo or base_url is None:
        Schedule.objects.filter(name=SCHEDULE_NAME).delete()
        if base_url is None and has_demo and settings.GLUCAST_DEMO_LIVE:
            logger.warning("The live demo needs a host:port bind to post to; %s is not one", bind)
        return None
    (schedule,) = install_schedules([(SCHEDULE_NAME, TASK, "I", CHECK_EVERY_MIN)])
    schedule.kwargs = repr({"base_url": base_url})
    schedule.save(update_fields=["kwargs"])
    return schedule
