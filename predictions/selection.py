"""Which model answers a person's forecast request."""

from predictions.models import Variant


def choose_model(person):
    """(MLModel, "stable") for the person's active ready model, else (None, "baseline").

    One small function on purpose: rollouts/canaries extend it here and nowhere else.
    """
    from mlmodels.services import active_model

    model = active_model(person)
    if model is None:
        return None, Variant.BASELINE
    return model, Variant.STABLE
