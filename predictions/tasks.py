"""django-q2 task entry points (see predictions/schedules.py for when they run); each works over
many people, in the explicit row-security context for everyone.

The 5-minute batch forecasts and outcome matching are sharded (predictions/sharding.py): the
schedule runs a dispatcher that enqueues chunks of people, and any worker runs a chunk.
`predict_batch_task` and `fill_outcomes_task` still do everything in one task (for an operator
who wants one run now; the management command `predict_batch` does the same in its process).
Shadow forecasts of the chunks' forecasts are made by the every-minute shadow schedule.
"""

from persons.row_security import everyone
from predictions import sharding
from predictions.batch import predict_batch
from predictions.decisions import evaluate_rollouts, retrain_on_performance
from predictions.models import ChunkKind
from predictions.outcomes import fill_outcomes, prune_prediction_log
from predictions.recalibration import calibrate_personal_bands, recalibrate_drifted
from predictions.shadow import run_pending_shadows


def fill_outcomes_task() -> dict:
    """Match outcomes, then start a PATCH recalibration where realized coverage drifted and a
    personal band calibration where a person's serving version is due one."""
    with everyone("outcome matching and recalibration"):
        counts = fill_outcomes()
        counts["recalibration"] = recalibrate_drifted()
        counts["personal_bands"] = calibrate_personal_bands()
        return counts


def prune_prediction_log_task() -> int:
    with everyone("prediction log pruning"):
        return prune_prediction_log() + sharding.prune_claims()


def predict_batch_task() -> dict:
    """Forecast every person with fresh data in this one task, then the shadow candidates of
    those forecasts (same readings, same origins)."""
    with everyone("batch forecast"):
        result = predict_batch().as_dict()
        result["shadow"] = run_pending_shadows()
        return result


def run_shadows_task() -> dict:
    """The candidate release's shadow forecasts of served logs, also those the batch chunks
    made (every minute; rows another worker holds are skipped, so any number of workers share)."""
    with everyone("shadow forecasts"):
        return run_pending_shadows()


def dispatch_batch_forecasts_task() -> dict:
    """The scheduled batch: this cycle's forecast chunks, enqueued for any worker."""
    with everyone("batch forecast dispatch"):
        return sharding.dispatch(ChunkKind.FORECASTS)


def dispatch_outcomes_task() -> dict:
    """Scheduled outcome matching: this cycle's chunks of people with lookups due, then a PATCH
    recalibration where realized coverage drifted (once per cycle, from the outcomes matched so
    far; the chunks enqueued now count from the next cycle on)."""
    with everyone("outcome matching dispatch and recalibration"):
        result = sharding.dispatch(ChunkKind.OUTCOMES)
        result["recalibration"] = recalibrate_drifted()
        result["personal_bands"] = calibrate_personal_bands()
        return result


def run_batch_chunk_task(chunk_id: int) -> dict:
    with everyone("batch chunk"):
        return sharding.run_chunk(chunk_id)


def evaluate_rollouts_task() -> list:
    with everyone("rollout decisions"):
        return evaluate_rollouts()


def retrain_on_performance_task() -> dict:
    with everyone("retrain on performance"):
        return retrain_on_performance()


__all__ = ["fill_outcomes", "prune_prediction_log", "predict_batch", "fill_outcomes_task",
           "prune_prediction_log_task", "predict_batch_task", "dispatch_batch_forecasts_task",
           "dispatch_outcomes_task", "run_batch_chunk_task", "evaluate_rollouts_task",
           "retrain_on_performance_task", "run_shadows_task"]
