"""django-q2 task entry points (see predictions/schedules.py for when they run); each works over
many people, in the explicit row-security context for everyone."""

from persons.row_security import everyone
from predictions.batch import predict_batch
from predictions.decisions import evaluate_rollouts, retrain_on_performance
from predictions.outcomes import fill_outcomes, prune_prediction_log
from predictions.recalibration import recalibrate_drifted
from predictions.shadow import run_pending_shadows


def fill_outcomes_task() -> dict:
    """Match outcomes, then start a PATCH recalibration where realized coverage drifted."""
    with everyone("outcome matching and recalibration"):
        counts = fill_outcomes()
        counts["recalibration"] = recalibrate_drifted()
        return counts


def prune_prediction_log_task() -> int:
    with everyone("prediction log pruning"):
        return prune_prediction_log()


def predict_batch_task() -> dict:
    """Forecast every person with fresh data (the scheduled batch), then the shadow candidates
    of those forecasts (same readings, same origins)."""
    with everyone("batch forecast"):
        result = predict_batch().as_dict()
        result["shadow"] = run_pending_shadows()
        return result


def run_shadows_task() -> dict:
    with everyone("shadow forecasts"):
        return run_pending_shadows()


def evaluate_rollouts_task() -> list:
    with everyone("rollout decisions"):
        return evaluate_rollouts()


def retrain_on_performance_task() -> dict:
    with everyone("retrain on performance"):
        return retrain_on_performance()


__all__ = ["fill_outcomes", "prune_prediction_log", "predict_batch", "fill_outcomes_task",
           "prune_prediction_log_task", "predict_batch_task", "evaluate_rollouts_task",
           "retrain_on_performance_task", "run_shadows_task"]
