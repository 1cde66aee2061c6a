"""The django-q2 schedules of the model registry, and `install_schedules`, which creates or
updates any app's schedule rows idempotently.

predictions.schedules.ensure_schedules (which `manage.py serve` runs at start) installs these
together with its own. An operator's edit in the admin survives unless `reset=True`.

| schedule                               | when                 | what                                  |
| -------------------------------------- | -------------------- | ------------------------------------- |
| glucast: weekly retraining             | hourly               | the active people whose hour it is    |
| glucast: dispatch training queue       | every minute         | hand waiting jobs out by priority     |
| glucast: retrain on new data           | hourly               | >= N new readings since the last job  |
| glucast: retrain on a new prior        | hourly               | models built on another prior (share  |
|                                        |                      | of the queue, mlmodels/prior_updates) |
| glucast: recover stalled training jobs | every 10 min         | re-queue or fail crashed jobs         |
| glucast: clean up old model versions   | daily                | archive + remove files beyond K       |

The schedules that judge outcomes (rollout decisions, the performance-triggered retrain) are
predictions' (predictions/schedules.py).
"""

from django.utils import timezone

SCHEDULES = [
    # (name, function, schedule type, minutes)
    # Weekly per person, but each in their own hour of the week (mlmodels.lifecycle.retrain_scheduled).
    ("glucast: weekly retraining", "mlmodels.tasks.retrain_scheduled_task", "I", 60),
    ("glucast: dispatch training queue", "mlmodels.tasks.dispatch_training_jobs_task", "I", 1),
    ("glucast: retrain on new data", "mlmodels.tasks.retrain_on_new_data_task", "I", 60),
    # A new population prior shipped: models built on the old one are retrained, a queue's share at a time.
    ("glucast: retrain on a new prior", "mlmodels.tasks.retrain_on_prior_change_task", "I", 60),
    ("glucast: recover stalled training jobs", "mlmodels.tasks.recover_stalled_jobs_task", "I", 10),
    ("glucast: clean up old model versions", "mlmodels.tasks.cleanup_old_versions_task", "D", None),
]


def _timing(schedule_type, value) -> dict:
    timing = {"schedule_type": schedule_type}
    if value is not None:
        timing["minutes"] = value
    return timing


# The weekly retrain was once one Monday cron ("C", or "W" without croniter): such a row
# becomes the hourly schedule of today's code, however it was installed.
SUPERSEDED_TYPES = {"C", "W"}


def install_schedules(schedules, *, reset: bool = False) -> list:
    """Create the schedule rows that are missing; keep an operator's timing unless `reset`.
    `schedules`: (name, dotted task path, schedule type, minutes | None) rows.

    A row whose task changed in the code is updated, and the old Monday cron of the weekly retrain
    becomes the hourly schedule; an operator's own timing survives otherwise."""
    from django_q.models import Schedule

    rows = []
    for name, func, schedule_type, value in schedules:
        defaults = {"func": func, "repeats": -1, **_timing(schedule_type, value)}
        schedule = Schedule.objects.filter(name=name).first()
        if schedule is None:
            schedule = Schedule(name=name, **defaults)
            schedule.next_run = timezone.now()
            schedule.save()
        else:
            changed = schedule.func != func
            if schedule.schedule_type in SUPERSEDED_TYPES and defaults["schedule_type"] not in SUPERSEDED_TYPES:
                for field, item in defaults.items():
                    setattr(schedule, field, item)
                schedule.cron = None
                schedule.next_run = timezone.now()
                changed = True
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
