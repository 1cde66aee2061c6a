"""Two releases side by side: warm forecast latency on release 1, on release 2 and with a shadow
running, in one run; and the paired comparison of both releases replayed on Broll.

    OMP_NUM_THREADS=1 .venv/bin/python bench/shadow.py [--requests 300] [--no-broll]

Part 1 — latency (in the serving process: forecast_for_person, the whole request path below the
view: readings query, model choice, cached model, fast path, the log INSERT). A rollout serves
release 1 (stable) with release 2 as candidate in a 50% shadow share; three people with 10 days
of readings and both versions: one outside the shadow share (release 1), one inside it (release
1 answered, release 2 computed afterwards by the shadow sweep), one pinned to release 2. Requests
are interleaved person by person so all three see the same load, while a second process runs
the worker's shadow sweep (run_pending_shadows) every 0.5 s, as the django-q2 worker does. Goal:
the shadow person's warm p95 within 2 ms of the release-1 person's.

Part 2 — paired replay on Broll (5 people, ../shared/data/broll2021_cgm.csv): per person, both
releases trained on the first 70% of the span and scored on every origin of the rest (the same
origins and outcomes), then the paired difference in MAE at 30+60 min with its 95% bootstrap
interval over people (mlmodels.core.paired, as the rollout page shows it).

Release 2 is the population prior's release (mlmodels/core/schemas.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GLUCAST_PGDATA", str(REPO / "var" / "pg-bench-shadow"))
os.environ.setdefault("GLUCAST_ARTIFACT_ROOT", str(REPO / "var" / "bench-shadow-artifacts"))

from bench.forecast_latency import fresh_person, register_model, setup_django, trained_files  # noqa: E402

BROLL = REPO.parent / "shared" / "data" / "broll2021_cgm.csv"


def release_2():
    """(label, train_forecaster keyword arguments) for release 2."""
    from mlmodels.core import schemas

    prior = schemas.load_prior()
    return f"release 2 = the population prior's release (prior {prior.version})", {"prior": prior}


def train_release_2_files(kwargs, seed=0, days=10):
    import datetime as dt

    from mlmodels.core.training import train_forecaster
    from observations.synthetic import generate_cgm

    end = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.timezone.utc)
    readings = generate_cgm(days, seed=seed, end=end, tz="Europe/Berlin")
    result = train_forecaster(readings, tz="Europe/Berlin", time_budget_s=10.0, random_state=seed, **kwargs)
    return result.forecaster.to_files(), str(result.algorithm)


def pct(values, q):
    return float(np.percentile(np.asarray(values), q))


def latency(args, label_2, kwargs_2) -> None:
    from mlmodels.models import MLModel, ModelPin, Rollout
    from mlmodels.rollouts import (
        bump_generation,
        create_rollout,
        in_shadow,
        pin_person,
        set_candidate,
    )
    from predictions.models import PredictionLog
    from predictions.services import forecast_for_person
    from predictions.shadow import run_pending_shadows

    files_1, algorithm_1 = trained_files(seed=0)
    files_2, algorithm_2 = train_release_2_files(kwargs_2)
    ModelPin.objects.all().delete()
    Rollout.objects.all().delete()
    bump_generation()
    rollout = create_rollout("glucose-prediction", 1, actor="bench", reason="release 1 serves")
    rollout = set_candidate(rollout, 2, shadow_percentage=50, actor="bench", reason="release 2 in shadow")

    people = {}
    for i in range(40):
        person, _token = fresh_person(f"bench-shadow-{i}", seed=1)
        shadow = in_shadow(person.pk, rollout.pk, 0, 50)
        role = "shadow" if shadow else "release 1"
        if "release 2" not in people and not shadow:
            role = "release 2"
        if role in people:
            person.owner.delete()
            continue
        register_model(person, files_1, algorithm_1, version="1.0.0")
        register_model(person, files_2, algorithm_2, version="2.0.0")
        if role == "release 2":
            pin_person(MLModel.objects.get(person=person, version="2.0.0"), actor="bench", reason="release 2 served")
        people[role] = person
        if len(people) == 3:
            break
    order = ["release 1", "release 2", "shadow"]
    for _ in range(30):  # warm: imports, model cache, compiled queries
        for role in order:
            log = forecast_for_person(people[role])
    run_pending_shadows()

    sweeper = subprocess.Popen([sys.executable, __file__, "--sweeper"], cwd=REPO, env=dict(os.environ))
    time.sleep(3)  # let it start (imports, its own model cache)
    times = {role: [] for role in order}
    answered = {role: set() for role in order}
    try:
        for i in range(args.requests):
            for role in order[i % 3:] + order[: i % 3]:
                started = time.perf_counter()
                log = forecast_for_person(people[role])
                times[role].append((time.perf_counter() - started) * 1000)
                answered[role].add((log.model_version, str(log.variant), log.shadow_pending))
    finally:
        sweeper.terminate()
        sweeper.wait(timeout=30)
    run_pending_shadows()
    n_shadow = PredictionLog.objects.filter(source="shadow", person=people["shadow"]).count()
    print(f"\nWarm forecast latency in the serving process ({args.requests} interleaved forecasts each, "
          f"default horizons; the shadow sweep every 0.5 s in a worker process):")
    for role in order:
        t = times[role]
        print(f"  {role:<10} p50 {statistics.median(t):6.2f} ms   p95 {pct(t, 95):6.2f} ms   p99 {pct(t, 99):6.2f} ms"
              f"   answered as {sorted(answered[role])}")
    delta = pct(times["shadow"], 95) - pct(times["release 1"], 95)
    print(f"  {label_2}")
    print(f"  shadow p95 - release-1 p95: {delta:+.2f} ms (goal <= 2 ms: {'met' if delta <= 2 else 'NOT met'}); "
          f"release-2 p95 - release-1 p95: {pct(times['release 2'], 95) - pct(times['release 1'], 95):+.2f} ms")
    print(f"  shadow forecasts computed: {n_shadow} for {len(times['shadow']) + 30} answers of the shadow person")


def broll(label_2, kwargs_2) -> None:
    import pandas as pd

    from mlmodels.core.paired import paired_mae_difference
    from mlmodels.core.training import evaluate_on, train_forecaster

    if not BROLL.exists():
        print(f"\nBroll file not found at {BROLL}: paired replay skipped.")
        return
    data = pd.read_csv(BROLL)
    print(f"\nPaired replay on Broll: both releases trained on the first 70% of each person, scored on the "
          f"same origins of the rest (30 and 60 min). {label_2}")
    n, sum_1, sum_2 = [], [], []
    for subject, frame in data.groupby("subject", sort=True):
        frame = frame[["time", "glucose_mg_dl"]].copy()
        frame["time"] = pd.to_datetime(frame["time"]).dt.tz_localize("UTC")
        start, end = frame["time"].min(), frame["time"].max()
        cut = start + (end - start) * 0.70
        train = frame.loc[frame["time"] < cut]
        one = train_forecaster(train, tz="UTC", time_budget_s=15.0)
        two = train_forecaster(train, tz="UTC", time_budget_s=15.0, **kwargs_2)
        m1 = evaluate_on(one.forecaster, frame, cut, end, tz="UTC", horizons=[30, 60])["per_horizon"]["model"]
        m2 = evaluate_on(two.forecaster, frame, cut, end, tz="UTC", horizons=[30, 60])["per_horizon"]["model"]
        count = s1 = s2 = 0.0
        for h in ("30", "60"):
            assert m1[h]["n"] == m2[h]["n"], "both releases must be scored on the same points"
            count += m1[h]["n"]
            s1 += m1[h]["mae"] * m1[h]["n"]
            s2 += m2[h]["mae"] * m2[h]["n"]
        n.append(count)
        sum_1.append(s1)
        sum_2.append(s2)
        print(f"  {subject:<12} {int(count):>6} paired points   release 1 MAE {s1 / count:5.2f}   "
              f"release 2 MAE {s2 / count:5.2f} mg/dL   ({(s2 - s1) / s1:+.1%})")
    paired = paired_mae_difference(n, sum_2, sum_1)
    lo, hi = paired["difference_interval"]
    rlo, rhi = paired["relative_interval"]
    print(f"  pooled: release 2 {paired['mae_candidate']:.2f} vs release 1 {paired['mae_served']:.2f} mg/dL, "
          f"difference {paired['difference']:+.2f} mg/dL ({paired['relative_difference']:+.1%}), "
          f"95% bootstrap interval over {paired['n_people']} people {lo:+.2f} to {hi:+.2f} mg/dL "
          f"({rlo:+.1%} to {rhi:+.1%}) on {paired['n_pairs']} paired points")


def sweeper() -> None:
    """The worker's part: the shadow sweep every 0.5 s until terminated."""
    setup_django()
    from predictions.shadow import run_pending_shadows

    while True:
        run_pending_shadows()
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-broll", action="store_true")
    parser.add_argument("--sweeper", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sweeper:
        return sweeper()
    setup_django()
    label_2, kwargs_2 = release_2()
    latency(args, label_2, kwargs_2)
    if not args.no_broll:
        broll(label_2, kwargs_2)
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f}")


if __name__ == "__main__":
    main()
