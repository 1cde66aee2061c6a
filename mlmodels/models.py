"""Registry of per-person forecasting models, the background jobs that train them, and what
serves whom (rollouts of releases, per-person pins, the audit trail and the serving generation).

A model version is immutable once saved: its artifacts live in the `artifacts` storage under
`storage_path`, and `artifact_sha256` (a digest over `artifact_manifest`, the SHA-256 of every
stored file) is checked on every load, so what serves forecasts is exactly what was trained.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from mlmodels.core.evaluation import metric_value  # noqa: F401 - read by admin, serializers, decisions
from persons.models import Person, PersonOwnedQuerySet

GLUCOSE_PREDICTION = "glucose-prediction"


class Variant(models.TextChoices):
    """Which kind of model answers a forecast: decided by the rollout assignment here, recorded
    on every prediction log by predictions."""

    STABLE = "stable", _("stable")
    CANARY = "canary", _("canary")
    BASELINE = "baseline", _("baseline")
    # No personal model answered: the population prior, or AR2 from a short history.
    POPULATION = "population", _("population model")
    SHORT_HISTORY = "short_history", _("short history")
    # The candidate computed in shadow after the answer: logged and scored, never returned.
    SHADOW = "shadow", _("shadow (never shown)")


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

    version is semantic "MAJOR.MINOR.PATCH": MAJOR = the release (its feature schema and output
    contract, mlmodels/core/schemas.py), MINOR = retrained on new data within that release,
    PATCH = the same point model with its bands recalibrated from the person's realized outcomes
    (mlmodels/recalibration.py). The integer columns exist so versions order numerically (1.10.0
    after 1.9.0), which a string does not.
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
        # The lifecycle's admin actions, each its own permission (the "Model operators" group).
        permissions = [
            ("activate_mlmodel", "Can activate a model version or roll a person back"),
            ("archive_mlmodel", "Can archive a model version (removes its files)"),
            ("pin_mlmodel", "Can pin a person to a model version or remove the pin"),
        ]
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
    # Not a training: a PATCH with the same point model and bands recalibrated from outcomes.
    CALIBRATION = "calibration", _("band recalibration")
    RETIREMENT = "retirement", _("schema retirement")
    # The model was built on another population prior than the one shipped (mlmodels/prior_updates.py).
    PRIOR = "prior", _("new population prior")


# Who waits least: django-q2 has no priorities, so jobs wait as rows and the training queue
# (mlmodels/training_queue.py) hands the highest first to the broker, a few at a time.
TRIGGER_PRIORITY = {
    JobTrigger.API: 100,  # the person asked
    JobTrigger.PAGE: 100,
    JobTrigger.OPERATOR: 80,
    JobTrigger.RETIREMENT: 70,  # people on a schema being retired
    JobTrigger.CALIBRATION: 60,  # bands only: seconds, and the bands are off now
    JobTrigger.PERFORMANCE: 50,  # the model got worse in practice
    JobTrigger.DATA: 30,  # a day of new readings
    JobTrigger.PRIOR: 20,  # built on an older prior: the new prior serves them meanwhile
    JobTrigger.SCHEDULE: 10,  # the weekly refresh
}


class TrainingJobQuerySet(PersonOwnedQuerySet):
    def open(self):
        return self.filter(status__in=OPEN_JOB_STATUSES)

    def waiting(self):
        """Queued and not yet handed to the broker (the training queue's backlog)."""
        return self.filter(status=JobStatus.QUEUED, dispatched_at__isnull=True)

    def in_flight(self):
        """Handed to the broker and not finished."""
        return self.filter(status__in=OPEN_JOB_STATUSES, dispatched_at__isnull=False)


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
    priority = models.PositiveSmallIntegerField(
        default=0, help_text="Higher is handed to a worker first (from the trigger; raised when the person asks)."
    )
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the training queue handed it to the broker; empty while it waits."
    )
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
        indexes = [
            models.Index(
                fields=["-priority", "created_at"],
                name="trainingjob_waiting",
                condition=Q(status="queued", dispatched_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.person} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_JOB_STATUSES


# --- What serves whom (the model lifecycle) --------------------------------------------------
# Vocabulary (see docs/lifecycle.md):
# - A *release* is the MAJOR of MLModel.version for one model type: glucose-prediction release 2
#   covers every person's 2.x.y models (new features or algorithm family = new MAJOR).
# - A *rollout* (one per model type) says which release is stable and, optionally, which candidate
#   release serves a deterministic `canary_percentage` of people.
# - A *pin* holds one person on one model version whatever the rollout says (e.g. to roll back
#   just them).


class RolloutStatus(models.TextChoices):
    STABLE = "stable", _("stable only")
    CANARY = "canary", _("canary running")
    SHADOW = "shadow", _("candidate in shadow only")
    PAUSED = "paused", _("candidate paused at 0%")
    ROLLED_BACK = "rolled_back", _("rolled back")


class Rollout(models.Model):
    """The serving plan of one model type: a stable release and an optional canary."""

    model_type = models.CharField(max_length=64, unique=True)
    stable_release = models.PositiveIntegerField(help_text="MAJOR version that serves everyone else")
    candidate_release = models.PositiveIntegerField(
        null=True, blank=True, help_text="MAJOR version tried on the canary share of people"
    )
    canary_percentage = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)],
        help_text="0-100: people whose bucket is below this number are in the canary arm",
    )
    shadow_percentage = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)],
        help_text="0-100: the next people after the canary share get the candidate computed in shadow "
        "(logged and scored, never shown)",
    )
    previous_stable_release = models.PositiveIntegerField(
        null=True, blank=True, help_text="Where 'roll back to the previous stable' goes"
    )
    status = models.CharField(max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.STABLE)
    status_reason = models.TextField(blank=True, help_text="Why the rollout is in this status")
    auto_promote = models.BooleanField(
        default=False, help_text="Promote the candidate automatically when it is better with enough evidence"
    )
    candidate_since = models.DateTimeField(
        null=True, blank=True, help_text="Start of the current comparison between the arms"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_type"]
        constraints = [
            models.CheckConstraint(condition=Q(canary_percentage__lte=100), name="rollout_percentage_0_100"),
            models.CheckConstraint(
                condition=Q(candidate_release__isnull=False) | Q(canary_percentage=0),
                name="rollout_no_canary_without_candidate",
            ),
            models.CheckConstraint(condition=Q(shadow_percentage__lte=100), name="rollout_shadow_0_100"),
            models.CheckConstraint(
                condition=Q(candidate_release__isnull=False) | Q(shadow_percentage=0),
                name="rollout_no_shadow_without_candidate",
            ),
            models.CheckConstraint(
                condition=Q(candidate_release__isnull=True) | ~Q(candidate_release=F("stable_release")),
                name="rollout_candidate_differs_from_stable",
            ),
        ]

    def __str__(self) -> str:
        if self.candidate_release is None:
            return f"{self.model_type}: release {self.stable_release}"
        shadow = f", shadow {self.shadow_percentage}%" if self.shadow_percentage else ""
        return (
            f"{self.model_type}: release {self.stable_release}, "
            f"candidate {self.candidate_release} at {self.canary_percentage}%{shadow}"
        )

    def snapshot(self) -> dict:
        """The fields an event records before and after a change."""
        return {
            "stable_release": self.stable_release,
            "candidate_release": self.candidate_release,
            "canary_percentage": self.canary_percentage,
            "shadow_percentage": self.shadow_percentage,
            "previous_stable_release": self.previous_stable_release,
            "status": self.status,
            "auto_promote": self.auto_promote,
        }


class EventAction(models.TextChoices):
    CREATED = "created", _("rollout created")
    CANDIDATE_SET = "candidate_set", _("candidate release set")
    PERCENTAGE_SET = "percentage_set", _("canary percentage set")
    SHADOW_SET = "shadow_set", _("shadow percentage set")
    PROMOTED = "promoted", _("candidate promoted to stable")
    ROLLED_BACK = "rolled_back", _("rolled back to the previous stable")
    AUTO_ROLLED_BACK = "auto_rolled_back", _("canary stopped automatically")
    AUTO_PROMOTED = "auto_promoted", _("candidate promoted automatically")
    AUTO_PROMOTE_SET = "auto_promote_set", _("automatic promotion switched")
    PINNED = "pinned", _("person pinned to a version")
    UNPINNED = "unpinned", _("pin removed")
    MODEL_ACTIVATED = "model_activated", _("model version activated")
    MODEL_ROLLED_BACK = "model_rolled_back", _("person's model rolled back to the previous version")
    MODEL_ARCHIVED = "model_archived", _("model version archived")
    MODEL_RECALIBRATED = "model_recalibrated", _("bands recalibrated (PATCH version)")
    SCHEMA_RETIRED = "schema_retired", _("feature schema retired")


AUTOMATION_ACTOR = "automation"


class RolloutEvent(models.Model):
    """One change to what serves people: who, when, why, and the state before and after.

    Rollout changes carry `rollout`; per-person changes (pins, activation, archive) carry
    `person` / `ml_model`. `actor` is empty for automated decisions (`actor_name` "automation").
    """

    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    model_type = models.CharField(max_length=64)
    action = models.CharField(max_length=24, choices=EventAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, help_text="Username, or 'automation'")
    reason = models.TextField()
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    evidence = models.JSONField(default=dict, blank=True, help_text="Numbers behind an automated decision")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    ml_model = models.ForeignKey(
        "mlmodels.MLModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name}: {self.get_action_display()}"


class ModelPinQuerySet(PersonOwnedQuerySet):
    pass


class ModelPin(models.Model):
    """One person held on one of their model versions, above any rollout."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="model_pins")
    model_type = models.CharField(max_length=64)
    ml_model = models.ForeignKey("mlmodels.MLModel", on_delete=models.CASCADE, related_name="pins")
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ModelPinQuerySet.as_manager()

    class Meta:
        ordering = ["person_id", "model_type"]
        constraints = [
            models.UniqueConstraint(fields=["person", "model_type"], name="modelpin_one_per_type"),
        ]

    def __str__(self) -> str:
        return f"{self.person} pinned to {self.ml_model.version}"


class ServingState(models.Model):
    """A single row whose generation goes up with every serving change, in the same transaction.

    Each process reads it once per forecast (a primary-key lookup) and reloads its cached rollout
    and pin configuration when it moved, so a click in the admin reaches every worker process.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    generation = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "serving state"
        verbose_name_plural = "serving state"

    def __str__(self) -> str:
        return f"serving generation {self.generation}"


class RetiredSchema(models.Model):
    """A feature schema (= the release of that MAJOR) nobody is served by any more.

    Written only by `manage.py retire_schema` after it retrained everyone still on it; from then
    on no version of that release is chosen to serve, no rollout may name it, and its builder may
    be removed from mlmodels/core/schemas.py.
    """

    model_type = models.CharField(max_length=64, default=GLUCOSE_PREDICTION)
    schema_version = models.PositiveIntegerField(help_text="Feature schema version = the release's MAJOR")
    retired_at = models.DateTimeField(auto_now_add=True)
    actor_name = models.CharField(max_length=150)
    reason = models.TextField()
    detail = models.JSONField(default=dict, blank=True, help_text="Who was retrained, by which jobs")

    class Meta:
        ordering = ["model_type", "schema_version"]
        constraints = [
            models.UniqueConstraint(fields=["model_type", "schema_version"], name="retiredschema_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.model_type} schema {self.schema_version} retired {self.retired_at:%Y-%m-%d}"
