"""Whole-account deletion: everything stored for a person in every app, keeping only the login.

It spans every app (readings, models and their files, forecasts, feedback, the task queue), so
it lives in the site layer, which may import them all.

Deletion stays deleted: the deletion first bumps Person.erasures with the person's row locked
(persons/erasure.py), so every background writer that began before it either finishes first
(and its rows are deleted here) or finds the count changed and writes nothing. The person's
queued tasks and their django-q result rows go in the same transaction, so open training jobs
are cancelled (their rows deleted, their queue entries gone).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage

from mlmodels.models import MLModel, TrainingJob
from mlmodels.storage import delete_person_artifacts
from observations.nightscout.models import NightscoutSource
from persons.erasure import begin_erasure
from persons.models import Person

logger = logging.getLogger(__name__)

# django-q2 tasks about one person: function path -> what their first argument is (the person,
# one of their training jobs, one of their Nightscout sites).
PER_PERSON_TASKS = {
    "mlmodels.tasks.run_training_job": "jobs",
    "observations.tasks.refresh_windows_task": "person",
    "observations.tasks.pull_nightscout_source_task": "sources",
}


def _names_person(func, args, ids: dict[str, set[int]]) -> bool:
    kind = PER_PERSON_TASKS.get(func if isinstance(func, str) else "")
    args = tuple(args or ())
    return bool(kind and args and args[0] in ids[kind])


def forget_tasks(ids: dict[str, set[int]]) -> int:
    """Remove the queued tasks (ORM broker) and task result rows naming a person, their jobs or
    their sites (`ids` by kind, see PER_PERSON_TASKS); returns how many. With Redis as the
    broker, queued messages stay there, and find their job or site gone when run."""
    removed = 0
    for row in OrmQ.objects.all():
        try:
            task = SignedPackage.loads(row.payload)
        except Exception:  # noqa: BLE001 - another secret key or a broken row: not ours to judge
            continue
        if _names_person(task.get("func"), task.get("args"), ids):
            row.delete()
            removed += 1
    for task in Task.objects.filter(func__in=list(PER_PERSON_TASKS)).only("id", "func", "args"):
        if _names_person(task.func, task.args, ids):
            task.delete()
            removed += 1
    return removed


def person_related_models():
    """Every model with a foreign key to Person: new per-person tables are covered without
    changes here (the delete-all test checks that none is left with a row)."""
    return [
        (relation.related_model, relation.field.name)
        for relation in Person._meta.get_fields(include_hidden=True)
        if relation.auto_created and not relation.concrete
        and (relation.one_to_many or relation.one_to_one)
        and relation.related_model is not Person
    ]


def delete_all_my_data(person) -> dict[str, int]:
    """Delete everything stored for the person - readings, imports, windows, models and their
    artifact files, training jobs, prediction logs, feedback - keeping only the login.

    Rows go in one transaction; model files are removed once it has committed (a rollback leaves
    them with their rows). Returns {model label: rows deleted}.
    """
    deleted: dict[str, int] = {}
    with transaction.atomic():
        begin_erasure(person)  # first: from here on no background writer adds anything
        models_to_clean = list(MLModel.objects.for_person(person))
        n_tasks = forget_tasks({
            "person": {person.pk},
            "jobs": set(TrainingJob.objects.for_person(person).values_list("id", flat=True)),
            "sources": set(NightscoutSource.objects.filter(person=person).values_list("id", flat=True)),
        })
        for model, field_name in person_related_models():
            _, per_model = model._base_manager.filter(**{field_name: person}).delete()
            for label, count in per_model.items():
                deleted[label] = deleted.get(label, 0) + count
        if n_tasks:
            deleted["django_q.tasks"] = n_tasks
        transaction.on_commit(lambda: delete_person_artifacts(person.pk, models_to_clean))
    logger.info("Deleted all data of person %s: %s", person.pk, deleted)
    return deleted
