"""Which model answers a person's forecast: the ONE place that decides.

The decision itself (pins, rollout arms, active models) is the model lifecycle's
(mlmodels.rollouts.assign_models); each choice also carries its arm and rollout, which
record_choice copies onto the prediction log (a table this app writes).
"""

from mlmodels.rollouts import Choice, assign_models

__all__ = ["Choice", "choose_model", "choose_models", "record_choice"]


def record_choice(log, choice) -> None:
    """Copy the arm and rollout of a Choice onto an (unsaved) PredictionLog, and mark it for a
    shadow forecast (predictions/shadow.py, computed after the answer) when the person is in the
    rollout's shadow share and the forecast will be scored (live, from stored readings)."""
    log.arm = getattr(choice, "arm", "") or ""
    log.rollout_id = getattr(choice, "rollout_id", None)
    log.shadow_pending = bool(getattr(choice, "shadow", None) is not None and log.outcome_pending)


def choose_models(person_ids, model_type: str = "glucose-prediction") -> dict:
    """{person_id: Choice(MLModel | None, variant)} for many people with one query.

    Order: a pin > the rollout arm (canary if the person's bucket is below the canary percentage
    and they have a model of the candidate release, else the stable release) > the active model;
    no model -> (None, "baseline").
    """
    return assign_models(person_ids, model_type)


def choose_model(person):
    """(MLModel | None, variant "stable"|"canary"|"baseline") for one person (a Choice)."""
    return choose_models([person.pk])[person.pk]
