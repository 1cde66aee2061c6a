"""Similar past episodes: each person's 2-hour windows embedded and searched with pgvector.

    refresh_windows(person, *, start=None, end=None) -> int       store windows not stored yet
    refresh_recent_windows(person) -> int                          only after the last stored one
    forget_windows(person, start, end) -> int                      drop windows built from a span
    current_window(person, *, as_of=None) -> (end UTC, values) | None
    similar_episodes(person, *, as_of=None, window=None, k=5) -> list[Episode]

A window is 24 readings on a 5-minute grid (observations.insights.embedding); stored windows end
on every UTC half hour, so the window ending 2 hours after another holds what FOLLOWED it, and
"what happened next" is one indexed lookup instead of a scan of readings.

Search is always within ONE person (the person filter is in the SQL, so no other person's
window can ever be returned). The HNSW index answers the nearest-neighbour ORDER BY; with the
person filter applied after the index scan, pgvector's iterative scan keeps reading the index
until enough of the person's rows are found (hnsw.iterative_scan), so a person with little data
among many others still gets k results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone
from pgvector.django import L2Distance

from observations.insights.embedding import (
    GRID_MINUTES,
    WINDOW_READINGS,
    embed_windows,
    window_embedding,
    windows_for_embedding,
)
from observations.models import GlucoseWindow
from observations.readings import readings_frame
from persons.erasure import PersonErased, check_not_erased, erasure_mark

STEP_MINUTES = 30
WINDOW_SPAN = timedelta(minutes=GRID_MINUTES * (WINDOW_READINGS - 1))  # first to last value
FOLLOW = timedelta(hours=2)
# Readings before a window's first grid point that interpolation may need.
READ_MARGIN = timedelta(minutes=20)
# Nearest neighbours fetched per wanted episode: overlapping windows of one past episode are
# near each other, and only one of them is shown.
CANDIDATES_PER_EPISODE = 8
HNSW_EF_SEARCH = 100
BULK_BATCH = 5000


@dataclass
class Episode:
    """One similar past window and the 2 hours after it (mg/dL, 5 minutes apart)."""

    end_at: datetime
    distance: float
    values: list[float]
    followed: list[float] = field(default_factory=list)

    @property
    def value_at_end(self) -> float:
        return self.values[-1]

    @property
    def value_after(self) -> float | None:
        return self.followed[-1] if self.followed else None

    @property
    def change_after(self) -> float | None:
        return None if not self.followed else self.followed[-1] - self.values[-1]

    @property
    def lowest_after(self) -> float | None:
        return min(self.followed) if self.followed else None

    @property
    def highest_after(self) -> float | None:
        return max(self.followed) if self.followed else None


# --- Filling ----------------------------------------------------------------------------------


def _readings(person, start=None, end=None) -> pd.DataFrame:
    """Readings with times snapped to the whole minute.

    CGM clocks jitter by a few seconds around the 5-minute cadence, so two missed readings can
    make a 15.05-minute step, which the embedding's 15-minute interpolation limit would treat as
    a gap and drop every window across it. Snapping keeps such windows; a minute changes nothing
    else on a 5-minute grid.
    """
    readings = readings_frame(person, start=start, end=end)
    readings["time"] = readings["time"].dt.round("min")
    return readings


def _windows(person, start=None, end=None) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """(UTC ends, values (n, 24), embeddings (n, EMBEDDING_DIM)) of every complete window of the
    person's readings ending in [start, end], computed in bulk (no per-window Python)."""
    readings = _readings(
        person,
        start=None if start is None else start - WINDOW_SPAN - READ_MARGIN,
        end=None if end is None else end + READ_MARGIN,
    )
    pairs = list(windows_for_embedding(readings, step_minutes=STEP_MINUTES))
    if not pairs:
        return pd.DatetimeIndex([], tz="UTC"), np.empty((0, WINDOW_READINGS)), np.empty((0, 0))
    ends = pd.DatetimeIndex([end_at for end_at, _ in pairs])
    values = np.vstack([window for _, window in pairs])
    embedded_ends, vectors = embed_windows(readings, person.time_zone, step_minutes=STEP_MINUTES)
    if not embedded_ends.equals(ends):  # both come from the same grid; a mismatch is a bug
        raise RuntimeError("window ends and embeddings disagree")
    keep = np.ones(len(ends), dtype=bool)
    if start is not None:
        keep &= ends >= pd.Timestamp(start)
    if end is not None:
        keep &= ends <= pd.Timestamp(end)
    return ends[keep], values[keep], vectors[keep]


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{v:.6g}" for v in vector) + "]"


def _array_literal(values: np.ndarray) -> str:
    return "{" + ",".join(f"{v:.2f}" for v in values) + "}"


def refresh_windows(person, *, start: datetime | None = None, end: datetime | None = None) -> int:
    """Embed and store the person's windows ending in [start, end] (all by default) that are not
    stored yet; returns how many were created. Idempotent; call it after every import.

    One INSERT ... SELECT FROM unnest(...) per chunk (ON CONFLICT DO NOTHING on the person's end
    time): no per-row ORM work, and concurrent refreshes cannot store a window twice.
    """
    mark = erasure_mark(person.pk)  # before the readings are read: see persons/erasure.py
    ends, values, vectors = _windows(person, start, end)
    if not len(ends):
        return 0
    stored = set(
        GlucoseWindow.objects.for_person(person)
        .filter(end_at__gte=ends[0].to_pydatetime(), end_at__lte=ends[-1].to_pydatetime())
        .values_list("end_at", flat=True)
    )
    new = np.array([end_at.to_pydatetime() not in stored for end_at in ends], dtype=bool)
    if not new.any():
        return 0
    ends, values, vectors = ends[new], values[new], vectors[new]
    created = 0
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        try:
            check_not_erased(person.pk, mark)
        except PersonErased:  # "delete all my data" ran meanwhile: the windows go unwritten
            return 0
        for first in range(0, len(ends), BULK_BATCH):
            chunk = slice(first, first + BULK_BATCH)
            cursor.execute(
                f"""
                WITH inserted AS (
                    INSERT INTO {GlucoseWindow._meta.db_table} (person_id, end_at, "values", embedding, created_at)
                    SELECT %s, u.end_at, u.vals::float8[], u.emb::vector, %s
                    FROM unnest(%s::timestamptz[], %s::text[], %s::text[]) AS u(end_at, vals, emb)
                    ON CONFLICT (person_id, end_at) DO NOTHING
                    RETURNING 1
                )
                SELECT count(*) FROM inserted
                """,
                [
                    person.pk,
                    now,
                    [end_at.to_pydatetime() for end_at in ends[chunk]],
                    [_array_literal(row) for row in values[chunk]],
                    [_vector_literal(row) for row in vectors[chunk]],
                ],
            )
            created += cursor.fetchone()[0]
    return created


# Spans up to this long are embedded in the request that imported them (about 150 windows, well
# under a second); longer ones (a year is ~17,500 windows, dominated by HNSW inserts) go to the
# worker (observations.services.schedule_window_refresh) so an upload never waits for them.
INLINE_SPAN = timedelta(days=3)


def refresh_recent_windows(person) -> int:
    """Store the windows after the person's last stored one (cheap: reads only recent readings)."""
    last = GlucoseWindow.objects.for_person(person).order_by("-end_at").values_list("end_at", flat=True).first()
    return refresh_windows(person, start=None if last is None else last + timedelta(minutes=STEP_MINUTES))


def forget_windows(person, start: datetime, end: datetime) -> int:
    """Delete the windows holding any reading from [start, end] (e.g. of a deleted import)."""
    deleted, _ = (
        GlucoseWindow.objects.for_person(person)
        .filter(end_at__gte=start, end_at__lte=end + WINDOW_SPAN)
        .delete()
    )
    return deleted


def rebuild_windows(person, start: datetime, end: datetime) -> int:
    """After readings in [start, end] changed: drop the windows touching them, embed them again."""
    forget_windows(person, start, end)
    return refresh_windows(person, start=start, end=end + WINDOW_SPAN)


# --- Searching --------------------------------------------------------------------------------


def current_window(person, *, as_of: datetime | None = None) -> tuple[pd.Timestamp, np.ndarray] | None:
    """The person's latest complete 2-hour window ending at or before `as_of` (default now),
    on the 5-minute grid; None when the last 2 hours have a gap."""
    as_of = as_of or timezone.now()
    readings = _readings(person, start=as_of - WINDOW_SPAN - READ_MARGIN * 2, end=as_of)
    latest = None
    for latest in windows_for_embedding(readings, step_minutes=GRID_MINUTES):  # noqa: B007
        pass
    return latest


def similar_episodes(
    person,
    *,
    as_of: datetime | None = None,
    window: tuple[pd.Timestamp, np.ndarray] | None = None,
    k: int = 5,
) -> list[Episode]:
    """The person's k past windows nearest to `window` (default: the current one), each with
    the 2 hours that followed it, nearest first.

    Only the person's own windows are searched. Excluded: windows whose following 2 hours reach
    into the query window (the same episode seen again), windows without a complete following
    2 hours, and all but the nearest of windows less than 2 hours apart (one episode, once).
    """
    window = window if window is not None else current_window(person, as_of=as_of)
    if window is None or k <= 0:
        return []
    end_at, values = window
    end_at = pd.Timestamp(end_at)
    vector = window_embedding(values, end_at.tz_convert(person.tz))
    latest_end = (end_at - WINDOW_SPAN - FOLLOW).to_pydatetime()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [HNSW_EF_SEARCH])
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        candidates = list(
            GlucoseWindow.objects.for_person(person)
            .filter(end_at__lte=latest_end)
            .annotate(distance=L2Distance("embedding", vector))
            .order_by("distance")
            .values("end_at", "values", "distance")[: k * CANDIDATES_PER_EPISODE]
        )
    candidates.sort(key=lambda row: row["distance"])  # relaxed_order may return them unsorted
    followers = dict(
        GlucoseWindow.objects.for_person(person)
        .filter(end_at__in=[row["end_at"] + FOLLOW for row in candidates])
        .values_list("end_at", "values")
    )
    chosen: list[Episode] = []
    for row in candidates:
        followed = followers.get(row["end_at"] + FOLLOW)
        if followed is None:
            continue
        if any(abs(row["end_at"] - episode.end_at) < FOLLOW for episode in chosen):
            continue
        chosen.append(Episode(row["end_at"], float(row["distance"]), list(row["values"]), list(followed)))
        if len(chosen) == k:
            break
    return chosen
