"""The django-q2 schedules of the model lifecycle, created or updated idempotently.

Called from predictions.schedules.ensure_schedules (which `manage.py serve` runs at start). Like
the serving schedules, an operator's edit in the admin survives unless `reset=True`.

| schedule                               | when                 | what                                  |
| -------------------------------------- | -------------------- | ------------------------------------- |
| glucast: evaluate rollouts             | every 15 min         | automated rollback / promotion        |
| glucast: weekly retraining             | cron Mon 03:00 (UTC) | retrain everyone active this week     |
| glucast: retrain on new data           | hourly               | >= N new readings since the last job  |
| glucast: retrain on performance drop   | hourly               | realized MAE (24 h) >> validation MAE |
| glucast: recover stalled training jobs | every 10 min         | re-queue or fail crashed jobs         |
| glucast: clean up old model versions   | daily                | archive + remove files beyond K       |
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

WEEKLY_CRON = "0 3 * * 1"

SCHEDULES = [
    # (name, function, schedule type, minutes or cron)
    ("glucast: evaluate rollouts", "mlmodels.lifecycle_tasks.evaluate_rollouts_task", "I", 15),
    ("glucast: weekly retraining", "mlmodels.lifecycle_tasks.retrain_scheduled_task", "C", WEEKLY_CRON),
    ("glucast: retrain on new data", "mlmodels.lifecycle_tasks.retrain_on_new_data_task", "I", 60),
    ("glucast: retrain on performance drop", "mlmodels.lifecycle_tasks.retrain_on_performance_task", "I", 60),
    ("glucast: recover stalled training jobs", "mlmodels.lifecycle_tasks.recover_stalled_jobs_task", "I", 10),
    ("glucast: clean up old model versions", "mlmodels.lifecycle_tasks.cleanup_old_versions_task", "D", None),
]


def cron_available() -> bool:
    """django-q2 needs the croniter package for cron schedules."""
    from django_q.conf import croniter

    return croniter is not None


def _timing(schedule_type, value) -> dict:
    if schedule_type == "C":
        if cron_available():
            return {"schedule_type": "C", "cron": getattr(settings, "GLUCAST_RETRAIN_CRON", value)}
        # Without croniter a weekly schedule still retrains once a week.
        return {"schedule_type": "W", "cron": None}
    timing = {"schedule_type": schedule_type}
    if value is not None:
        timing["minutes"] = value
    return timing


def _first_run(schedule_type: str, schedule):
    now = timezone.now()
    if schedule_type == "C":
        return schedule.calculate_next_run(now)
    if schedule_type == "W":  # not everyone at once the moment the server first starts
        return now + timedelta(days=7)
    return now


def ensure_lifecycle_schedules(*, reset: bool = False) -> list:
    from django_q.models import Schedule

    rows = []
    for name, func, schedule_type, value in SCHEDULES:
        defaults = {"func": func, "repeats": -1, **_timing(schedule_type, value)}
        schedule = Schedule.objects.filter(name=name).first()
        if schedule is None:
            schedule = Schedule(name=name, **defaults)
            schedule.next_run = _first_run(defaults["schedule_type"], schedule)
            schedule.save()
        else:
            changed = schedule.func != func
            schedule.func = func
            if reset:
                for field, item in defaults.items():
                    setattr(schedule, field, item)
                changed = True
            if changed:
                schedule.save()
        rows.append(schedule)
    return rows
