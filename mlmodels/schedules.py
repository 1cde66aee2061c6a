"""The django-q2 schedules of the model registry, and `install_schedules`, which creates or
updates any app's schedule rows idempotently.

predictions.schedules.ensure_schedules (which `manage.py serve` runs at start) installs these
together with its own. An operator's edit in the admin survives unless `reset=True`.

| schedule                               | when                 | what                                  |
| -------------------------------------- | -------------------- | ------------------------------------- |
| glucast: weekly retraining             | cron Mon 03:00 (UTC) | retrain everyone active this week     |
| glucast: retrain on new data           | hourly               | >= N new readings since the last job  |
| glucast: recover stalled training jobs | every 10 min         | re-queue or fail crashed jobs         |
| glucast: clean up old model versions   | daily                | archive + remove files beyond K       |

The schedules that judge outcomes (rollout decisions, the performance-triggered retrain) are
predictions' (predictions/schedules.py).
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

CRON = "cron"  # stands for settings.GLUCAST_RETRAIN_CRON in a schedule's timing

SCHEDULES = [
    # (name, function, schedule type, minutes or CRON)
    ("glucast: weekly retraining", "mlmodels.tasks.retrain_scheduled_task", "C", CRON),
    ("glucast: retrain on new data", "mlmodels.tasks.retrain_on_new_data_task", "I", 60),
    ("glucast: recover stalled training jobs", "mlmodels.tasks.recover_stalled_jobs_task", "I", 10),
    ("glucast: clean up old model versions", "mlmodels.tasks.cleanup_old_versions_task", "D", None),
]


def cron_available() -> bool:
    """django-q2 needs the croniter package for cron schedules."""
    from django_q.conf import croniter

    return croniter is not None


def _timing(schedule_type, value) -> dict:
    if schedule_type == "C":
        if cron_available():
            return {"schedule_type": "C", "cron": settings.GLUCAST_RETRAIN_CRON}
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


def install_schedules(schedules, *, reset: bool = False) -> list:
    """Create the schedule rows that are missing; keep an operator's timing unless `reset`.
    `schedules`: (name, dotted task path, schedule type, minutes | CRON | None) rows."""
    from django_q.models import Schedule

    rows = []
    for name, func, schedule_type, value in schedules:
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


def ensure_lifecycle_schedules(*, reset: bool = False) -> list:
    return install_schedules(SCHEDULES, reset=reset)
