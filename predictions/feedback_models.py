"""A person's verdict on one of their forecasts: helpful or not (counted per version and arm).

Imported at the bottom of predictions/models.py so Django registers it in `predictions`.
"""

from django.db import models

from persons.models import Person, PersonOwnedQuerySet


class PredictionFeedbackQuerySet(PersonOwnedQuerySet):
    pass


class PredictionFeedback(models.Model):
    """One verdict per forecast; a second answer replaces the first (updated_at moves)."""

    prediction = models.OneToOneField(
        "predictions.PredictionLog", on_delete=models.CASCADE, related_name="feedback"
    )
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="prediction_feedback")
    helpful = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PredictionFeedbackQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.person} on forecast {self.prediction_id}: {'helpful' if self.helpful else 'not helpful'}"
