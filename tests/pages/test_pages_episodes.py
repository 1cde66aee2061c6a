import datetime as dt

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from observations.episodes import (
    FOLLOW,
    WINDOW_SPAN,
    current_window,
    forget_windows,
    refresh_recent_windows,
    refresh_windows,
    similar_episodes,
)
from observations.insights.embedding import EMBEDDING_DIM, SCALE_MG_DL
from observations.models import GlucoseWindow
from tests.pages.conftest import load_readings

pytestmark = pytest.mark.django_db


def test_refresh_windows_stores_each_half_hour_window_once(person_with_data):
    created = refresh_windows(person_with_data)
    # 14 days of readings with a few gaps: most of the 48 half hours a day have a complete window.
    assert 14 * 48 * 0.7 < created <= 14 * 48
    ends = list(GlucoseWindow.objects.for_person(person_with_data).values_list("end_at", flat=True))
    assert all(end.minute in (0, 30) and end.second == 0 for end in ends)
    assert refresh_windows(person_with_data) == 0  # idempotent
    assert refresh_recent_windows(person_with_data) == 0


def test_stored_window_holds_the_readings_on_its_grid(person_with_data):
    refresh_windows(person_with_data)
    window = GlucoseWindow.objects.for_person(person_with_data).order_by("end_at")[100]
    assert len(window.values) == 24 and len(window.embedding) == 28
    assert all(40 <= v <= 400 for v in window.values)


def test_similar_episodes_are_the_callers_own_and_in_the_past(person_with_data, other_person):
    # The other person has the SAME readings: their windows are at distance 0 and would win any
    # search that forgot the person filter.
    load_readings(other_person)
    refresh_windows(person_with_data)
    refresh_windows(other_person)
    own_ids = set(GlucoseWindow.objects.for_person(person_with_data).values_list("end_at", flat=True))
    window = current_window(person_with_data)
    assert window is not None
    episodes = similar_episodes(person_with_data, k=5)
    assert len(episodes) == 5
    for episode in episodes:
        assert episode.end_at in own_ids
        # what followed ends before the current window starts: not the current episode again
        assert episode.end_at + FOLLOW <= window[0] - WINDOW_SPAN
        assert len(episode.followed) == 24
    distances = [e.distance for e in episodes]
    assert distances == sorted(distances)
    # one episode shown once: no two within 2 hours of each other
    ends = sorted(e.end_at for e in episodes)
    assert all(b - a >= FOLLOW for a, b in zip(ends, ends[1:]))


def test_other_persons_windows_never_returned_even_when_caller_has_few(person, other_person):
    load_readings(other_person, days=14, seed=3)
    refresh_windows(other_person)
    load_readings(person, days=1, seed=3)
    refresh_windows(person)
    episodes = similar_episodes(person, k=5)
    own = set(GlucoseWindow.objects.for_person(person).values_list("end_at", flat=True))
    assert episodes and all(e.end_at in own for e in episodes)


def test_followed_is_the_window_two_hours_later(person):
    # A fixed clock: the synthetic series (and so its gaps) must not depend on when the test runs.
    end = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.timezone.utc)
    load_readings(person, end=end)
    refresh_windows(person)
    episode = similar_episodes(person, as_of=end, k=1)[0]
    later = GlucoseWindow.objects.for_person(person).get(end_at=episode.end_at + FOLLOW)
    assert episode.followed == list(later.values)
    assert episode.change_after == pytest.approx(later.values[-1] - episode.values[-1])


def test_nearest_episode_of_a_past_window_is_itself(person_with_data):
    refresh_windows(person_with_data)
    windows = list(GlucoseWindow.objects.for_person(person_with_data).order_by("end_at"))
    ends = {w.end_at for w in windows}
    # An episode needs its following 2 hours; where the synthetic gaps fall depends on the clock.
    stored = next(w for w in windows[50:] if w.end_at + FOLLOW in ends)
    query = (pd.Timestamp(stored.end_at) + dt.timedelta(days=5), np.array(stored.values))
    # Same values at the same clock time five days later: the stored window is at distance 0, but
    # for rounding. A window's values are stored to 0.01 mg/dL while its embedding was made from
    # the unrounded ones, so each of the 28 coordinates (scaled by 50 mg/dL) may differ by up to
    # 0.005 / 50; whether the interpolated values have decimals at all depends on the clock the
    # test runs at (it failed once at 3.6e-4 against a bound of 1e-4).
    episodes = similar_episodes(person_with_data, window=query, k=3)
    rounding = np.sqrt(EMBEDDING_DIM) * 2 * 0.005 / SCALE_MG_DL  # about 1e-3
    assert episodes[0].end_at == stored.end_at
    assert episodes[0].distance == pytest.approx(0.0, abs=rounding)
    assert episodes[1].distance > 50 * rounding, [e.distance for e in episodes]  # any other is far further


def test_no_current_window_when_readings_are_stale(person):
    load_readings(person, days=2, age_min=6 * 60)
    refresh_windows(person)
    assert current_window(person) is None
    assert similar_episodes(person) == []


def test_forget_windows_drops_windows_touching_the_span(person_with_data):
    refresh_windows(person_with_data)
    now = timezone.now()
    start, end = now - dt.timedelta(days=3), now - dt.timedelta(days=2)
    forget_windows(person_with_data, start, end)
    touching = GlucoseWindow.objects.for_person(person_with_data).filter(
        end_at__gte=start, end_at__lte=end + WINDOW_SPAN
    )
    assert not touching.exists()
    assert GlucoseWindow.objects.for_person(person_with_data).exists()
