"""Registry of per-person forecasting models and the background jobs that train them.

A model version is immutable once saved: its artifacts live in the `artifacts` storage under
`storage_path`, and `artifact_sha256` (a digest over `artifact_manifest`, the SHA-256 of every
stored file) is checked on every load, so what serves forecasts is exactly what was trained.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from persons.models import Person, PersonOwnedQuerySet

GLUCOSE_PREDICTION = "glucose-prediction"


def metric_value(metrics: dict, horizon_min: int, name: str = "mae", *, baseline: bool = False):
    """One held-out figure from a metrics dict of mlmodels.core.training (None if absent).

    Layout: metrics["per_horizon"]["model" | "baseline_ar2" | "persistence"][str(h)][name].
    """
    who = "baseline_ar2" if baseline else "model"
    try:
        value = metrics["per_horizon"][who][str(horizon_min)][name]
    except (KeyError, TypeError):
        return None
    return None if value is None else float(value)


class ModelStatus(models.TextChoices):
    TRAINING = "training", _("training")
    READY = "ready", _("ready")
    REJECTED = "rejected", _("rejected")
    FAILED = "failed", _("failed")
    ARCHIVED = "archived", _("archived")


class MLModelQuerySet(PersonOwnedQuerySet):
    def of_type(self, model_type: str = GLUCOSE_PREDICTION):
        return self.filter(model_type=model_type)

    def active(self):
        return self.filter(is_active=True)

    def newest_first(self):
        return self.order_by("-version_major", "-version_minor", "-version_patch")


class MLModel(models.Model):
    """One trained version of one person's model.

    version is semantic "MAJOR.MINOR.PATCH": MAJOR = feature/output schema of the pipeline,
    MINOR = retrain number within that schema, PATCH = a fix of the same training. The integer
    columns exist so versions order numerically (1.10.0 after 1.9.0), which a string does not.
    """

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="ml_models")
    model_type = models.CharField(max_length=64, default=GLUCOSE_PREDICTION)
    version = models.CharField(max_length=32)
    version_major = models.PositiveIntegerField()
    version_minor = models.PositiveIntegerField()
    version_patch = models.PositiveIntegerField(default=0)
    algorithm = models.CharField(max_length=64, blank=True)
    storage_path = models.CharField(max_length=512, blank=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    data_start = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True)
    n_readings = models.PositiveIntegerField(default=0)
    hyperparameters = models.JSONField(default=dict, blank=True)
    feature_schema = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Held-out metrics per horizon, with the baseline's."
    )
    comparison = models.JSONField(
        default=dict, blank=True, help_text="Deploy-if-better: both models on the same held-out period."
    )
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.TRAINING)
    is_active = models.BooleanField(default=False)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_manifest = models.JSONField(
        default=dict, blank=True, help_text="SHA-256 of every stored file, by file name."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MLModelQuerySet.as_manager()

    class Meta:
        ordering = ["person_id", "-version_major", "-version_minor", "-version_patch"]
        verbose_name = "ML model"
        constraints = [
            models.UniqueConstraint(
                fields=["person", "model_type", "version"], name="mlmodel_unique_version"
            ),
            # Serving must never have to choose between two active versions.
            models.UniqueConstraint(
                fields=["person", "model_type"],
                condition=Q(is_active=True),
                name="mlmodel_one_active_per_type",
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(status=ModelStatus.READY),
                name="mlmodel_active_is_ready",
            ),
        ]
        indexes = [
            models.Index(
                fields=["person", "model_type", "version_major", "version_minor", "version_patch"],
                name="mlmodel_person_version",
            )
        ]

    def __str__(self) -> str:
        return f"{self.person} {self.model_type} {self.version} ({self.status})"

    def metric(self, horizon_min: int, name: str = "mae", *, baseline: bool = False):
        """One held-out figure, e.g. metric(30) -> MAE at 30 min; None when not recorded."""
        return metric_value(self.metrics, horizon_min, name, baseline=baseline)


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    SKIPPED = "skipped", _("skipped")


OPEN_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobTrigger(models.TextChoices):
    API = "api", _("API request")
    PAGE = "page", _("web page")
    SCHEDULE = "schedule", _("schedule")
    DATA = "data", _("new data")
    PERFORMANCE = "performance", _("performance drop")
    OPERATOR = "operator", _("operator")


class TrainingJobQuerySet(PersonOwnedQuerySet):
    def open(self):
        return self.filter(status__in=OPEN_JOB_STATUSES)


class TrainingJob(models.Model):
    """One request to (re)train a person's model, run by a django-q2 worker or the command."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="training_jobs")
    model_type = models.CharField(max_length=64, default=GLUCOSE_PREDICTION)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    reason = models.CharField(
        max_length=64, blank=True, help_text="Machine-readable outcome, e.g. insufficient_data, deployed."
    )
    detail = models.JSONField(default=dict, blank=True, help_text="Numbers behind the reason.")
    trigger = models.CharField(max_length=16, choices=JobTrigger.choices, default=JobTrigger.API)
    task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    model = models.ForeignKey(
        MLModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    objects = TrainingJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Two concurrent "train" requests create ONE job: the second insert fails here.
            models.UniqueConstraint(
                fields=["person", "model_type"],
                condition=Q(status__in=["queued", "running"]),
                name="trainingjob_one_open_per_type",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.person} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_JOB_STATUSES


# Rollouts, pins and the serving generation (the model lifecycle) live in their own module.
from mlmodels.lifecycle_models import (  # noqa: E402,F401
    ModelPin,
    Rollout,
    RolloutEvent,
    ServingState,
)
