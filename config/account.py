"""Whole-account deletion: everything stored for a person in every app, keeping only the login.

It spans every app (readings, models and their files, forecasts, feedback), so it lives in the
site layer, which may import them all.
"""

from __future__ import annotations

from django.db import transaction

from mlmodels.models import MLModel
from mlmodels.storage import delete_person_artifacts
from persons.models import Person


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
    models_to_clean = list(MLModel.objects.for_person(person))
    deleted: dict[str, int] = {}
    with transaction.atomic():
        for model, field_name in person_related_models():
            _, per_model = model._base_manager.filter(**{field_name: person}).delete()
            for label, count in per_model.items():
                deleted[label] = deleted.get(label, 0) + count

    transaction.on_commit(lambda: delete_person_artifacts(person.pk, models_to_clean))
    return deleted
