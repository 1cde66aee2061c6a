"""django-q2 entry points of the model lifecycle (see mlmodels/lifecycle_schedules.py for when)."""

from mlmodels.decisions import evaluate_rollouts
from mlmodels.lifecycle import (
    cleanup_old_versions,
    recover_stalled_jobs,
    retrain_on_new_data,
    retrain_on_performance,
    retrain_scheduled,
)


def evaluate_rollouts_task() -> list:
    return evaluate_rollouts()


def retrain_scheduled_task() -> dict:
    return retrain_scheduled()


def retrain_on_new_data_task() -> dict:
    return retrain_on_new_data()


def retrain_on_performance_task() -> dict:
    return retrain_on_performance()


def recover_stalled_jobs_task() -> dict:
    return recover_stalled_jobs()


def cleanup_old_versions_task() -> dict:
    return cleanup_old_versions()
