"""Which model answers a person's forecast: the ONE place that decides (rollouts extend it)."""

from predictions.models import Variant


def choose_models(person_ids) -> dict:
    """{person_id: (MLModel | None, variant)} for many people with one query.

    Today: the person's active ready model ("stable"), else no model ("baseline").
    """
    from mlmodels.models import MLModel, ModelStatus

    ids = list(person_ids)
    active = {
        model.person_id: model
        for model in MLModel.objects.filter(person_id__in=ids, status=ModelStatus.READY)
        .of_type()
        .active()
    }
    return {
        pid: (active[pid], Variant.STABLE) if pid in active else (None, Variant.BASELINE)
        for pid in ids
    }


def choose_model(person):
    """(MLModel | None, variant "stable"|"canary"|"baseline") for one person."""
    return choose_models([person.pk])[person.pk]
