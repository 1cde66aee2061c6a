"""Cost of choosing the model for one forecast, against the query it replaced, in the same run.

    .venv/bin/python bench/model_choice.py [--people 2000] [--calls 2000]

choose_model(person) now runs ONE fixed SQL statement that returns the ServingState generation
together with every version of the person that could serve (the rollout and pin configuration is
cached per process until the generation moves). Measured in one process on the embedded PostgreSQL (its own data dir,
var/pg-bench-lifecycle unless GLUCAST_PGDATA is set), for random people:

  baseline      the ORM active-model query alone (what serving did before rollouts)
  no rollout    choose_model without any rollout
  rollout       with a rollout: stable release 1, candidate 2 at 30%, and 200 pinned people
  batch         choose_models for all people at once, per person

Prints median and p95 in microseconds and the ratio median/baseline median. Model rows only (no
artifact files are read: choosing never opens them). On a loaded 2-core box (load 5): baseline
2965 us, choose_model 958 us (0.32x) without and 966 us (0.33x) with a rollout — the statement is
built once per process, so the ORM's per-call SQL compilation is gone.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("GLUCAST_PGDATA", str(REPO / "var" / "pg-bench-lifecycle"))
os.environ.setdefault("GLUCAST_LOG_LEVEL", "ERROR")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn, arguments):
    samples = []
    for argument in arguments:
        started = time.perf_counter()
        fn(argument)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    import django

    django.setup()
    from persons.row_security import everyone  # noqa: E402

    # Set-up and checks over many people: the explicit row-security context for everyone, for the
    # whole process (kept referenced: a collected context manager would end).
    BENCH_CONTEXT = everyone("benchmark")
    BENCH_CONTEXT.__enter__()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from mlmodels.models import MLModel, ModelPin, Rollout, RolloutEvent, ServingState
    from mlmodels.rollouts import create_rollout, forget_serving_config, set_candidate
    from persons.models import Person
    from predictions.selection import choose_model, choose_models

    # A fresh population every run.
    RolloutEvent.objects.all().delete()
    ModelPin.objects.all().delete()
    Rollout.objects.all().delete()
    ServingState.objects.all().delete()
    get_user_model().objects.filter(username__startswith="bench-choice-").delete()
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-choice-{i}") for i in range(args.people)]
    )
    people = Person.objects.bulk_create([Person(owner=u, display_name=u.username) for u in users])
    rows = []
    for person in people:
        for version, status, active in (("1.0.0", "archived", False), ("1.1.0", "ready", False),
                                        ("2.0.0", "ready", True)):
            major, minor, patch = (int(p) for p in version.split("."))
            rows.append(MLModel(person=person, version=version, version_major=major, version_minor=minor,
                                version_patch=patch, status=status, is_active=active,
                                storage_path=f"bench/{person.pk}/{version}", artifact_sha256="0" * 64))
    MLModel.objects.bulk_create(rows, batch_size=2000)

    rng = random.Random(0)
    sample = [rng.choice(people) for _ in range(args.calls)]

    def baseline(person):
        return MLModel.objects.filter(person_id=person.pk, status="ready").of_type().active().first()

    results = {}
    for fn in (baseline, choose_model):  # warm-up
        timed(fn, sample[:100])
    results["baseline"] = timed(baseline, sample)
    results["no rollout"] = timed(choose_model, sample)
    rollout = create_rollout("glucose-prediction", 1, actor="bench", reason="bench")
    set_candidate(rollout, 2, percentage=30, actor="bench", reason="bench")
    for person in people[:200]:
        ModelPin.objects.create(person=person, model_type="glucose-prediction",
                                ml_model=MLModel.objects.get(person=person, version="1.0.0"), reason="bench")
    from mlmodels.rollouts import bump_generation

    bump_generation()
    forget_serving_config()
    timed(choose_model, sample[:100])
    results["rollout"] = timed(choose_model, sample)
    started = time.perf_counter()
    choose_models([p.pk for p in people])
    batch_us = (time.perf_counter() - started) * 1e6 / len(people)

    base = statistics.median(results["baseline"])
    print(f"{'case':12s} {'median us':>10s} {'p95 us':>10s} {'ratio':>7s}")
    for name, samples in results.items():
        median = statistics.median(samples)
        print(f"{name:12s} {median:10.0f} {percentile(samples, 0.95):10.0f} {median / base:7.2f}")
    print(f"{'batch':12s} {batch_us:10.1f} {'':>10s} {batch_us / base:7.2f}   (per person, {len(people)} people)")

    get_user_model().objects.filter(username__startswith="bench-choice-").delete()
    Rollout.objects.all().delete()


if __name__ == "__main__":
    main()
