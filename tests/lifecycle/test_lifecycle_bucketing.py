"""Deterministic canary assignment: stable across calls and processes, proportional, monotone."""

import os
import subprocess
import sys
from pathlib import Path

from mlmodels.rollouts import bucket, in_canary

REPO = Path(__file__).resolve().parents[2]


def test_bucket_is_in_range_and_the_same_on_every_call():
    buckets = [bucket(pid, 7) for pid in range(1, 2001)]
    assert all(0 <= b < 100 for b in buckets)
    assert buckets == [bucket(pid, 7) for pid in range(1, 2001)]


def test_bucket_is_the_same_in_another_process_with_another_hash_seed():
    """Python's hash() is salted per process; the assignment must not be."""
    code = (
        "import django; django.setup(); from mlmodels.rollouts import bucket; "
        "print([bucket(p, 3) for p in range(1, 51)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345", "DJANGO_SETTINGS_MODULE": "config.settings"},
        timeout=120,
    ).stdout.strip().splitlines()[-1]
    assert out == str([bucket(p, 3) for p in range(1, 51)])


def test_ten_percent_is_ten_percent_plus_or_minus_two_over_ten_thousand_people():
    for rollout_id in (1, 2, 99):
        share = sum(in_canary(pid, rollout_id, 10) for pid in range(1, 10_001)) / 10_000
        assert 0.08 <= share <= 0.12, (rollout_id, share)


def test_every_percentage_gives_about_its_share():
    for percentage in (0, 1, 25, 50, 75, 100):
        share = sum(in_canary(pid, 5, percentage) for pid in range(1, 10_001)) / 10_000
        assert abs(share - percentage / 100) <= 0.02, (percentage, share)


def test_raising_the_percentage_keeps_everyone_already_in_the_canary():
    people = range(1, 10_001)
    previous = set()
    for percentage in range(0, 101, 5):
        canary = {pid for pid in people if in_canary(pid, 11, percentage)}
        assert previous <= canary, percentage
        previous = canary
    assert previous == set(people)


def test_another_rollout_draws_other_people():
    first = {pid for pid in range(1, 5001) if in_canary(pid, 1, 10)}
    second = {pid for pid in range(1, 5001) if in_canary(pid, 2, 10)}
    assert first != second and len(first & second) < len(first) / 2
