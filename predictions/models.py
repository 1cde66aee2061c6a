"""The prediction log (every forecast served, with its outcomes), realized performance, and the
person's verdict on a forecast (helpful or not, counted per version and arm)."""

import math

from django.db import models
from django.utils.translation import gettext_lazy as _

from mlmodels.models import Variant
from persons.models import Person, PersonOwnedQuerySet


class Source(models.TextChoices):
    API = "api", _("API request")
    BATCH = "batch", _("batch")
    # The candidate release computed after the answer (predictions/shadow.py): never shown.
    SHADOW = "shadow", _("shadow")


class PredictionLogQuerySet(PersonOwnedQuerySet):
    """A person reaches only the forecasts they were answered: shadow forecasts (the candidate
    release computed after the answer, for the paired comparison) are staff-only evidence."""

    def for_user(self, user):
        return super().for_user(user).exclude(source=Source.SHADOW)

    def for_person(self, person):
        return super().for_person(person).exclude(source=Source.SHADOW)

    def awaiting_outcomes(self, now):
        """Logs with at least one point whose outcome can be looked up by `now`."""
        return self.filter(outcome_pending=True, outcomes_next_at__lte=now)


class PredictionLog(models.Model):
    """One forecast as it was answered, kept so its accuracy can be checked once time has passed.

    `points` (mg/dL, whatever unit was answered): [{horizon_min, time, value_mg_dl, lower_80_mg_dl,
    upper_80_mg_dl, lower_95_mg_dl, upper_95_mg_dl, actual_mg_dl, actual_at, matched_at}].
    `matched_at` is when the outcome was resolved: with `actual_mg_dl` null it means no reading
    came within 5 minutes of the point's time.
    """

    # No single-column index: (person, -issued_at) below serves every lookup by person, and one
    # index less is one write less on the table every forecast inserts into.
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    ml_model = models.ForeignKey(
        "mlmodels.MLModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="predictions",
        help_text="The model that answered; empty when the population prior or the baseline answered",
    )
    model_type = models.CharField(max_length=32, default="glucose-prediction")
    model_version = models.CharField(max_length=32, help_text="Version of the model that answered")
    variant = models.CharField(max_length=16, choices=Variant.choices)
    algorithm = models.CharField(max_length=64)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.API)
    from_history = models.BooleanField(
        default=False,
        help_text="Made from readings sent with the request (a what-if or replay): never scored "
        "against stored readings.",
    )
    issued_at = models.DateTimeField(db_index=False)
    as_of = models.DateTimeField(help_text="Time of the last reading used")
    unit = models.CharField(max_length=8)
    horizons = models.JSONField(default=list)
    points = models.JSONField(default=list)
    provenance = models.JSONField(default=dict)
    quality = models.JSONField(default=dict)
    latency_ms = models.FloatField(null=True, blank=True)
    fallback_reason = models.CharField(max_length=255, blank=True)
    # Set by the model lifecycle (mlmodels/rollouts.py): the arm the person was assigned to
    # ("stable", "canary", "pinned"; empty without a rollout) and the rollout that assigned it.
    arm = models.CharField(max_length=32, blank=True)
    rollout = models.ForeignKey(
        "mlmodels.Rollout", null=True, blank=True, on_delete=models.SET_NULL, related_name="predictions"
    )
    # Shadow mode (predictions/shadow.py): a served log whose candidate forecast is still to be
    # computed carries shadow_pending; the candidate's own log points back with shadow_of.
    shadow_pending = models.BooleanField(default=False)
    shadow_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="shadows",
        help_text="The served forecast this shadow forecast pairs with (same person, origin, outcomes)",
    )
    outcome_pending = models.BooleanField(default=True)
    outcomes_next_at = models.DateTimeField(
        null=True, blank=True, help_text="Earliest time an unresolved point can be looked up"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PredictionLogQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [
            models.Index(fields=["person", "-issued_at"], name="predlog_person_issued"),
            models.Index(
                fields=["outcomes_next_at"],
                name="predlog_outcomes_due",
                condition=models.Q(outcome_pending=True),
            ),
            models.Index(fields=["issued_at"], name="predlog_issued"),
            models.Index(fields=["id"], name="predlog_shadow_due", condition=models.Q(shadow_pending=True)),
        ]

    def __str__(self) -> str:
        return f"{self.person} {self.model_version} ({self.variant}) at {self.issued_at:%Y-%m-%d %H:%M}"


class ModelPerformanceQuerySet(PersonOwnedQuerySet):
    pass


class ModelPerformance(models.Model):
    """Running sums of realized errors, per person, model version and horizon.

    Kept as sums (not averages) so the outcome task can add a batch with one UPDATE and the
    figures stay exact however often it runs.
    """

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="model_performance")
    ml_model = models.ForeignKey(
        "mlmodels.MLModel",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="performance",
        help_text="Empty for the baseline",
    )
    model_version = models.CharField(max_length=32, help_text="Model version, or the baseline's name")
    horizon_min = models.PositiveIntegerField()
    n_matched = models.PositiveIntegerField(default=0)
    sum_abs_error = models.FloatField(default=0.0)
    sum_squared_error = models.FloatField(default=0.0)
    n_inside_80 = models.PositiveIntegerField(default=0)
    n_inside_95 = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelPerformanceQuerySet.as_manager()

    class Meta:
        ordering = ["person", "model_version", "horizon_min"]
        verbose_name = "model performance"
        verbose_name_plural = "model performance"
        constraints = [
            models.UniqueConstraint(
                fields=["person", "model_version", "horizon_min"],
                name="modelperformance_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.person} {self.model_version} +{self.horizon_min} min (n={self.n_matched})"

    @property
    def mae_mg_dl(self) -> float | None:
        return self.sum_abs_error / self.n_matched if self.n_matched else None

    @property
    def rmse_mg_dl(self) -> float | None:
        return math.sqrt(self.sum_squared_error / self.n_matched) if self.n_matched else None

    @property
    def coverage_80(self) -> float | None:
        return self.n_inside_80 / self.n_matched if self.n_matched else None

    @property
    def coverage_95(self) -> float | None:
        return self.n_inside_95 / self.n_matched if self.n_matched else None


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
        verbose_name = "prediction feedback"
        verbose_name_plural = "prediction feedback"

    def __str__(self) -> str:
        return f"{self.person} on forecast {self.prediction_id}: {'helpful' if self.helpful else 'not helpful'}"


class ChunkKind(models.TextChoices):
    FORECASTS = "forecasts", _("batch forecasts")
    OUTCOMES = "outcomes", _("outcome matching")


class ChunkStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    DONE = "done", _("done")
    SKIPPED = "skipped", _("skipped")


class BatchChunk(models.Model):
    """The claim row of one chunk of scheduled work: one kind of work, for one 5-minute cycle, on
    the people whose ids fall in one slot (predictions/sharding.py).

    Unique per (kind, cycle, slot), so dispatching a cycle twice creates no second chunk; the
    worker that runs a chunk holds this row locked and writes its results and `done` in the same
    transaction, so a retried or double-enqueued chunk either finds it done or redoes all of it.
    Not per-person data (it names an id range), so it has no person.
    """

    kind = models.CharField(max_length=16, choices=ChunkKind.choices)
    cycle_at = models.DateTimeField(help_text="Start of the 5-minute cycle that dispatched it")
    slot = models.PositiveIntegerField(help_text="People with slot * chunk_size <= id < (slot + 1) * chunk_size")
    chunk_size = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-cycle_at", "kind", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "cycle_at", "slot"], name="batchchunk_unique_per_cycle"),
        ]
        indexes = [models.Index(fields=["created_at"], name="batchchunk_created")]

    def __str__(self) -> str:
        return f"{self.kind} {self.cycle_at:%Y-%m-%d %H:%M} slot {self.slot} ({self.status})"
