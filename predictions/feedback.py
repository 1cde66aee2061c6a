"""A person's verdict on their own forecasts (helpful or not), counted per model version and arm.

    record_feedback(person, prediction_id, helpful) -> PredictionFeedback   (404 if not theirs)
    feedback_counts(queryset=None) -> list[{model_version, arm, helpful, not_helpful}]

The API (POST /api/predictions/{id}/feedback/) and the person's page both call record_feedback.
A second verdict on the same forecast replaces the first.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404
from django.utils.translation import gettext_lazy as _

from predictions.models import PredictionFeedback
from predictions.models import PredictionLog

BAD_HELPFUL = _('"helpful" must be true or false.')
UNKNOWN_FEEDBACK_FIELDS = _("Unknown fields: %(fields)s. Send only {\"helpful\": true|false}.")


class BadFeedback(ValueError):
    """Feedback that is not {"helpful": true|false}; `field` names what is wrong."""

    def __init__(self, message, *, field: str = "helpful"):
        super().__init__(str(message))
        self.message = message
        self.field = field

    @property
    def detail(self) -> dict:
        return {"code": "invalid_feedback", "field": self.field, "detail": str(self.message)}


def record_feedback(person, prediction_id, helpful) -> PredictionFeedback:
    """Store the person's verdict on one of THEIR forecasts; another person's id is a 404."""
    if not isinstance(helpful, bool):
        raise BadFeedback(BAD_HELPFUL)
    try:
        prediction_id = int(prediction_id)
    except (TypeError, ValueError):
        raise Http404("No such forecast.") from None
    with transaction.atomic():
        prediction = PredictionLog.objects.for_person(person).filter(pk=prediction_id).only("id", "person_id").first()
        if prediction is None:
            raise Http404("No such forecast.")
        feedback, _created = PredictionFeedback.objects.update_or_create(
            prediction=prediction, defaults={"person": person, "helpful": helpful}
        )
    return feedback


def feedback_arguments(data) -> bool:
    """Request body -> helpful (shape checks: exactly {"helpful": bool})."""
    if not isinstance(data, dict):
        raise BadFeedback(BAD_HELPFUL)
    unknown = sorted(set(data) - {"helpful"})
    if unknown:
        raise BadFeedback(UNKNOWN_FEEDBACK_FIELDS % {"fields": ", ".join(unknown)}, field=unknown[0])
    if "helpful" not in data:
        raise BadFeedback(BAD_HELPFUL)
    return data["helpful"]


def feedback_counts(queryset=None) -> list[dict]:
    """Verdicts per model version and arm (staff views; pass a filtered queryset to narrow)."""
    queryset = PredictionFeedback.objects.all() if queryset is None else queryset
    rows = (
        queryset.values("prediction__model_version", "prediction__arm")
        .annotate(n_helpful=Count("id", filter=Q(helpful=True)), n_not_helpful=Count("id", filter=Q(helpful=False)))
        .order_by("prediction__model_version", "prediction__arm")
    )
    return [
        {
            "model_version": row["prediction__model_version"],
            "arm": row["prediction__arm"],
            "helpful": row["n_helpful"],
            "not_helpful": row["n_not_helpful"],
        }
        for row in rows
    ]
