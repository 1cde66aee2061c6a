"""Similar-episode search for a person with a year of CGM data: fill time and query time with the
HNSW index, against an exact scan of the same person's windows in the same run.

    .venv/bin/python bench/similar_episodes.py [--days 365] [--queries 200] [--others 4]

Uses its own embedded PostgreSQL data directory (var/pg-bench, migrated on start) unless
GLUCAST_PGDATA or DATABASE_URL is set, and deletes the people it created when done.

What is measured
- fill: observations.episodes.refresh_windows(person) for the whole year (read readings, embed
  every half-hourly 2-hour window, bulk insert; the HNSW index is maintained on insert).
- nearest neighbours: the query similar_episodes() runs - the person's 40 nearest windows that
  ended before the query window - once ordered by the HNSW index (`ORDER BY embedding <-> q`,
  hnsw.ef_search=100, iterative scan) and once as an exact scan (`ORDER BY (embedding <-> q) + 0`
  is not an index order, so PostgreSQL reads the person's rows and sorts all distances).
  Recall@40 = share of the exact 40 that HNSW also returned.
- similar_episodes(): the whole service call (query + "what followed" lookup + de-duplication).
Other people's windows (--others, 90 days each) share the table, as in production.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATABASE_URL"):
    os.environ.setdefault("GLUCAST_PGDATA", str(ROOT / "var" / "pg-bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()
from persons.row_security import everyone  # noqa: E402

# Set-up and checks over many people: the explicit row-security context for everyone, for the
# whole process (kept referenced: a collected context manager would end).
BENCH_CONTEXT = everyone("benchmark")
BENCH_CONTEXT.__enter__()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from observations.episodes import (  # noqa: E402
    CANDIDATES_PER_EPISODE,
    FOLLOW,
    HNSW_EF_SEARCH,
    WINDOW_SPAN,
    refresh_windows,
    similar_episodes,
)
from observations.insights.embedding import window_embedding  # noqa: E402
from observations.models import GlucoseWindow  # noqa: E402
from observations.services import import_frame  # noqa: E402
from observations.synthetic import generate_cgm  # noqa: E402
from persons.services import create_person  # noqa: E402

K = 5
LIMIT = K * CANDIDATES_PER_EPISODE
TABLE = GlucoseWindow._meta.db_table
NN_SQL = f"""
    SELECT id FROM {TABLE}
    WHERE person_id = %s AND end_at <= %s
    ORDER BY {{order}}
    LIMIT {LIMIT}
"""


def nearest_ids(person_id, vector, latest_end, *, exact: bool) -> list[int]:
    literal = "[" + ",".join(f"{v:.6f}" for v in vector) + "]"
    order = "(embedding <-> %s::vector) + 0" if exact else "embedding <-> %s::vector"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [HNSW_EF_SEARCH])
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(NN_SQL.format(order=order), [person_id, latest_end, literal])
        return [row[0] for row in cursor.fetchall()]


def explain(person_id, vector, latest_end, *, exact: bool) -> str:
    literal = "[" + ",".join(f"{v:.6f}" for v in vector) + "]"
    order = "(embedding <-> %s::vector) + 0" if exact else "embedding <-> %s::vector"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute("EXPLAIN " + NN_SQL.format(order=order), [person_id, latest_end, literal])
        return "\n".join("    " + row[0] for row in cursor.fetchall())


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000


def summary(values_ms: list[float]) -> str:
    return f"median {statistics.median(values_ms):7.2f} ms   p95 {np.percentile(values_ms, 95):7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--others", type=int, default=4, help="other people (90 days each) in the table")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    stamp = int(time.time())
    people = []
    try:
        now = timezone.now()
        for i in range(args.others):
            other, _, _ = create_person(f"bench-other-{stamp}-{i}")
            people.append(other)
            import_frame(other, generate_cgm(90, seed=100 + i, end=now, tz=other.time_zone), source="csv")
            refresh_windows(other)
        person, _, _ = create_person(f"bench-{stamp}")
        people.append(person)
        readings, generate_ms = timed(generate_cgm, args.days, seed=args.seed, end=now, tz=person.time_zone)
        batch, import_ms = timed(import_frame, person, readings, source="csv", filename="bench.csv")
        created, fill_ms = timed(refresh_windows, person)
        total_rows = GlucoseWindow.objects.count()
        print(f"person: {args.days} days, {batch.n_created} readings "
              f"(generated in {generate_ms / 1000:.1f} s, imported in {import_ms / 1000:.1f} s)")
        print(f"fill:   {created} windows embedded and stored in {fill_ms / 1000:.2f} s "
              f"({fill_ms * 1000 / max(created, 1):.0f} us per window); table holds {total_rows} windows "
              f"of {len(people)} people")
        with connection.cursor() as cursor:  # what autovacuum would do after a fill this size
            cursor.execute(f"ANALYZE {TABLE}")
        again, refill_ms = timed(refresh_windows, person)
        print(f"refill: nothing new ({again} windows) in {refill_ms:.0f} ms")

        rng = np.random.default_rng(args.seed)
        windows = list(GlucoseWindow.objects.for_person(person).order_by("end_at").values_list("end_at", "values"))
        # Query windows whose past holds at least a month of data, as a person would have.
        eligible = [w for w in windows if w[0] >= windows[0][0] + pd.Timedelta(days=30)]
        queries = [eligible[i] for i in rng.choice(len(eligible), size=args.queries, replace=False)]
        tz = person.tz

        def prepared(query):
            end_at, values = query
            vector = window_embedding(np.asarray(values), pd.Timestamp(end_at).tz_convert(tz))
            return vector, end_at - WINDOW_SPAN - FOLLOW

        vector, latest = prepared(queries[0])
        print("plan with the index:\n" + explain(person.pk, vector, latest, exact=False))
        print("plan of the exact scan:\n" + explain(person.pk, vector, latest, exact=True))

        for query in queries[:5]:  # warm the caches for both
            nearest_ids(person.pk, *prepared(query), exact=False)
            nearest_ids(person.pk, *prepared(query), exact=True)
        hnsw_ms, exact_ms, service_ms, recalls = [], [], [], []
        for query in queries:
            vector, latest = prepared(query)
            approx, ms = timed(nearest_ids, person.pk, vector, latest, exact=False)
            hnsw_ms.append(ms)
            exact, ms = timed(nearest_ids, person.pk, vector, latest, exact=True)
            exact_ms.append(ms)
            recalls.append(len(set(approx) & set(exact)) / max(len(exact), 1))
            end_at, values = query
            episodes, ms = timed(similar_episodes, person, window=(pd.Timestamp(end_at), np.asarray(values)), k=K)
            service_ms.append(ms)
        print(f"\n{args.queries} queries, {LIMIT} nearest of the person's windows before the query window:")
        print(f"  HNSW index    {summary(hnsw_ms)}")
        print(f"  exact scan    {summary(exact_ms)}")
        print(f"  exact / HNSW  {statistics.median(exact_ms) / statistics.median(hnsw_ms):.1f}x (medians)")
        print(f"  recall@{LIMIT} of HNSW vs exact: mean {np.mean(recalls):.3f}, min {np.min(recalls):.3f}")
        print(f"similar_episodes(k={K}) whole call: {summary(service_ms)}")
    finally:
        for who in people:
            who.owner.delete()  # cascades to readings, imports and windows


if __name__ == "__main__":
    main()
