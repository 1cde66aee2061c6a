"""The django-q2 schedules of the serving side and of the decisions judged from outcomes,
created or updated idempotently (with the model registry's own, mlmodels/schedules.py).

Called by `manage.py serve` at start; the rows stay editable in the admin (an operator's change
to the interval survives unless it is a deliberate reset with `reset=True`).

| schedule                               | when          | what                                  |
| -------------------------------------- | ------------- | ------------------------------------- |
| glucast: fill forecast outcomes        | every 5 min   | match forecasts with actual readings  |
| glucast: batch forecasts               | every 5 min   | forecast everyone with fresh data     |
| glucast: prune prediction log          | daily         | drop forecasts beyond retention       |
| glucast: evaluate rollouts             | every 15 min  | automated rollback / promotion        |
| glucast: retrain on performance drop   | hourly        | realized MAE (24 h) >> validation MAE |
| glucast: pull Nightscout sites         | every 5 min   | new readings from people's own sites  |
| glucast: shadow forecasts              | every minute  | the candidate on shadow people's origins |

The two 5-minute schedules run dispatchers that enqueue chunks of people for any worker
(predictions/sharding.py), so the work spreads over every worker process and machine.
"""

from django.conf import settings

from mlmodels.schedules import ensure_lifecycle_schedules, install_schedules

SCHEDULES = [
    # (name, function, schedule type, minutes)
    ("glucast: fill forecast outcomes", "predictions.tasks.dispatch_outcomes_task", "I", 5),
    ("glucast: batch forecasts", "predictions.tasks.dispatch_batch_forecasts_task", "I", 5),
    ("glucast: prune prediction log", "predictions.tasks.prune_prediction_log_task", "D", None),
    ("glucast: evaluate rollouts", "predictions.tasks.evaluate_rollouts_task", "I", 15),
    ("glucast: retrain on performance drop", "predictions.tasks.retrain_on_performance_task", "I", 60),
    # observations' task (this list is the one every serving-side schedule is installed from)
    ("glucast: pull Nightscout sites", "observations.tasks.pull_nightscout_sites_task", "I",
     settings.GLUCAST_NIGHTSCOUT_PULL_INTERVAL_MIN),
    ("glucast: shadow forecasts", "predictions.tasks.run_shadows_task", "I", 1),
]


def ensure_schedules(*, reset: bool = False) -> list:
    """Create the schedules that are missing (and with `reset`, restore their timing): these and
    the model registry's (retraining triggers, stalled jobs, cleanup)."""
    return install_schedules(SCHEDULES, reset=reset) + ensure_lifecycle_schedules(reset=reset)
