"""django-q2 task entry points (see predictions/schedules.py for when they run)."""

from predictions.batch import predict_batch
from predictions.decisions import evaluate_rollouts, retrain_on_performance
from predictions.outcomes import fill_outcomes, prune_prediction_log


def fill_outcomes_task() -> dict:
    return fill_outcomes()


def prune_prediction_log_task() -> int:
    return prune_prediction_log()


def predict_batch_task() -> dict:
    """Forecast every person with fresh data (the scheduled batch)."""
    return predict_batch().as_dict()


def evaluate_rollouts_task() -> list:
    return evaluate_rollouts()


def retrain_on_performance_task() -> dict:
    return retrain_on_performance()


__all__ = ["fill_outcomes", "prune_prediction_log", "predict_batch", "fill_outcomes_task",
           "prune_prediction_log_task", "predict_batch_task", "evaluate_rollouts_task",
           "retrain_on_performance_task"]
