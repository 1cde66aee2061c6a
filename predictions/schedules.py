"""The django-q2 schedules of the serving side, created or updated idempotently.

Called by `manage.py serve` at start; the rows stay editable in the admin (an operator's change
to the interval survives unless it is a deliberate reset with `reset=True`).
"""

from django.utils import timezone

SCHEDULES = [
    # (name, function, schedule type, minutes)
    ("glucast: fill forecast outcomes", "predictions.tasks.fill_outcomes_task", "I", 5),
    ("glucast: batch forecasts", "predictions.tasks.predict_batch_task", "I", 5),
    ("glucast: prune prediction log", "predictions.tasks.prune_prediction_log_task", "D", None),
]


def ensure_schedules(*, reset: bool = False) -> list:
    """Create the schedules that are missing (and with `reset`, restore their timing)."""
    from django_q.models import Schedule

    rows = []
    for name, func, schedule_type, minutes in SCHEDULES:
        defaults = {"func": func, "schedule_type": schedule_type, "repeats": -1}
        if minutes is not None:
            defaults["minutes"] = minutes
        schedule = Schedule.objects.filter(name=name).first()
        if schedule is None:
            schedule = Schedule.objects.create(name=name, next_run=timezone.now(), **defaults)
        else:
            changed = schedule.func != func
            schedule.func = func
            if reset:
                for field, value in defaults.items():
                    setattr(schedule, field, value)
                changed = True
            if changed:
                schedule.save()
        rows.append(schedule)
    # The model lifecycle's schedules (rollout decisions, retraining triggers, cleanup).
    from mlmodels.lifecycle_schedules import ensure_lifecycle_schedules

    rows += ensure_lifecycle_schedules(reset=reset)
    return rows
