"""Batch forecasts for 1,000 people with trained models, stored in the prediction log.

    .venv/bin/python bench/batch_forecast.py [--people 1000] [--models 5] [--mode both]

Set-up (not timed): --models real models are trained by the pipeline on synthetic people; 1,000
people get 3 hours of readings ending a minute ago and a registered, active model version whose
artifacts (stored through the registry, SHA-256 recorded) are copies of one of those models.
Runs on its own embedded PostgreSQL (var/pg-bench-serving unless GLUCAST_PGDATA is set).

Timed: predict_batch() — what the 5-minute schedule runs — from reading the data to the
bulk-created log rows, in a process whose model cache starts empty.
  shared    the copies are byte-identical per trained model, so people share --models
            artifacts: the batch loads each once and predicts each group in one call
  distinct  every person's artifact has its own bytes (as after individual retraining): 1,000
            model loads (verify SHA-256, parse boosters) and 1,000 model calls
Goal: 1,000 people forecast and stored in <= 30 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402

from forecast_latency import distinct_copy, row_fields, setup_django, trained_files  # noqa: E402

PREFIX = "bench-batch-"


def remove_previous() -> None:
    from django.contrib.auth import get_user_model

    from mlmodels.models import MLModel
    from mlmodels.storage import delete_artifacts

    for model in MLModel.objects.filter(person__owner__username__startswith=PREFIX):
        delete_artifacts(model)
    get_user_model().objects.filter(username__startswith=PREFIX).delete()


def create_people(n: int) -> list:
    """n people (no password: the batch needs no login) with 3 hours of readings each."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from observations.models import Observation
    from observations.synthetic import generate_cgm
    from persons.models import Person

    User = get_user_model()
    users = [User(username=f"{PREFIX}{i:05d}") for i in range(n)]
    for user in users:
        user.set_unusable_password()
    User.objects.bulk_create(users, batch_size=1000)
    users = list(User.objects.filter(username__startswith=PREFIX).order_by("username"))
    people = Person.objects.bulk_create(
        [Person(owner=u, display_name=u.username, time_zone="Europe/Berlin") for u in users], batch_size=1000
    )
    end = timezone.now() - dt.timedelta(minutes=1)
    grid = [end - dt.timedelta(minutes=5 * k) for k in range(36, -1, -1)]
    grid_s = np.array([t.timestamp() for t in grid])
    rows = []
    for i, person in enumerate(people):
        # Realistic values, but every 5 minutes without the generator's random dropouts: the
        # benchmark is about people who CAN be forecast (gaps are refused, see the tests).
        frame = generate_cgm(0.25, seed=1000 + i, end=end, tz="Europe/Berlin")
        times_s = frame["time"].astype("int64").to_numpy() / 1e9
        values = np.round(np.interp(grid_s, times_s, frame["glucose_mg_dl"].to_numpy()))
        rows += [
            Observation(person=person, value_mg_dl=float(v), original_value=float(v), original_unit="mg/dL",
                        effective_at=t, source="bench")
            for t, v in zip(grid, values)
        ]
    Observation.objects.bulk_create(rows, batch_size=5000)
    return people


def register_models(people, model_files: list[tuple[dict, str]], *, version: str, distinct: bool) -> None:
    from django.utils import timezone

    from mlmodels.models import MLModel, ModelStatus
    from mlmodels.storage import save_artifacts

    major, minor, patch = (int(p) for p in version.split("."))
    MLModel.objects.filter(person__in=people, is_active=True).update(is_active=False)
    rows = []
    for i, person in enumerate(people):
        files, algorithm = model_files[i % len(model_files)]
        if distinct:
            files = distinct_copy(files, f"{person.pk}-{version}")
        row = MLModel(person=person, version=version, version_major=major, version_minor=minor,
                      version_patch=patch, algorithm=algorithm, status=ModelStatus.READY,
                      trained_at=timezone.now(), is_active=True, **row_fields(algorithm))
        save_artifacts(row, files, {"algorithm": algorithm, "bench": True}, "bench copy\n")
        rows.append(row)
    MLModel.objects.bulk_create(rows, batch_size=500)


def timed_batch(label: str, people, *, cold: bool = True) -> None:
    from django.utils import timezone

    from predictions.batch import predict_batch
    from predictions.cache import forecaster_cache, reset_forecaster_cache
    from predictions.models import PredictionLog

    if cold:
        reset_forecaster_cache()
    # Each run stands for a run after new readings came in: earlier batch forecasts would make
    # the batch skip people whose data did not change.
    PredictionLog.objects.filter(person__in=people, source="batch").delete()
    now = timezone.now()
    started = time.perf_counter()
    result = predict_batch(now=now)
    elapsed = time.perf_counter() - started
    stored = PredictionLog.objects.filter(issued_at=now, source="batch", person__in=people).count()
    stable = PredictionLog.objects.filter(issued_at=now, source="batch", person__in=people, variant="stable").count()
    print(f"  {label}: {elapsed:6.2f} s\n             forecasts stored {stored} (by the personal model: {stable}); "
          f"{result.n_groups} model groups, {result.n_model_loads} model loads; "
          f"phases {result.timings}; cache {forecaster_cache().stats()['approx_mb']} MB")
    goal = "met" if elapsed <= 30 and stored >= len(people) else "NOT met"
    print(f"            goal {len(people)} people in <= 30 s: {goal}")


def timed_outcomes(people) -> None:
    """The outcome task on the last batch: 2.5 hours of readings arrive for everyone, then
    fill_outcomes() (clock moved forward) matches every point and updates the performance sums."""
    from django.db.models import Max

    from observations.models import Observation
    from predictions.models import ModelPerformance, PredictionLog
    from predictions.outcomes import fill_outcomes

    issued = PredictionLog.objects.filter(person__in=people, source="batch").aggregate(t=Max("issued_at"))["t"]
    last = Observation.objects.filter(person__in=people).aggregate(t=Max("effective_at"))["t"]
    rows = []
    for i, person in enumerate(people):
        for k in range(1, 31):
            value = 120 + 30 * np.sin((i + k) / 7)
            rows.append(Observation(person=person, value_mg_dl=round(value), original_value=round(value),
                                    original_unit="mg/dL", effective_at=last + dt.timedelta(minutes=5 * k),
                                    source="bench"))
    Observation.objects.bulk_create(rows, batch_size=5000)
    started = time.perf_counter()
    counts = fill_outcomes(now=issued + dt.timedelta(hours=2, minutes=30))
    elapsed = time.perf_counter() - started
    scored = ModelPerformance.objects.filter(person__in=people).aggregate(n=Max("n_matched"))["n"]
    print(f"  outcomes: {elapsed:6.2f} s for {counts['logs']} forecasts, {counts['matched']} points matched "
          f"to readings (+-5 min), {counts['missing']} without; performance rows updated (max n {scored})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--models", type=int, default=5, help="really trained models to copy")
    parser.add_argument("--mode", choices=["shared", "distinct", "both"], default="both")
    args = parser.parse_args()

    setup_django()
    t = time.perf_counter()
    model_files = [trained_files(seed=seed) for seed in range(args.models)]
    print(f"set-up: trained {args.models} models in {time.perf_counter() - t:.1f} s "
          f"({', '.join(sorted({a for _, a in model_files}))})")
    t = time.perf_counter()
    remove_previous()
    people = create_people(args.people)
    print(f"set-up: {len(people)} people with 3 h of readings in {time.perf_counter() - t:.1f} s")

    print(f"\nBatch forecasts (predict_batch, default horizons 30/60/120 min), {len(people)} people:")
    if args.mode in ("shared", "both"):
        t = time.perf_counter()
        register_models(people, model_files, version="1.0.0", distinct=False)
        print(f"  (registered {len(people)} model versions sharing {args.models} artifacts in {time.perf_counter() - t:.1f} s)")
        timed_batch("shared", people)
    if args.mode in ("distinct", "both"):
        t = time.perf_counter()
        register_models(people, model_files, version="1.1.0", distinct=True)
        print(f"  (registered {len(people)} model versions with distinct artifacts in {time.perf_counter() - t:.1f} s)")
        from django.conf import settings

        # The worker's cache sized for everyone (~0.4 MB per loaded model, measured): the first
        # run loads every model, the runs every 5 minutes after it find them loaded.
        settings.GLUCAST_MODEL_CACHE_SIZE = len(people) + 100
        settings.GLUCAST_MODEL_CACHE_MB = 1024
        timed_batch("distinct", people)
        timed_batch("distinct, next run (cache sized for everyone)", people, cold=False)
    timed_outcomes(people)
    import os

    load = os.getloadavg()
    print(f"  machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f}")


if __name__ == "__main__":
    main()
