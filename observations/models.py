"""CGM and blood glucose readings, aligned with FHIR Observation and the HL7 CGM guide."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from persons.models import Person, PersonOwnedQuerySet


class ObservationStatus(models.TextChoices):
    FINAL = "final", _("final")
    PRELIMINARY = "preliminary", _("preliminary")
    ENTERED_IN_ERROR = "entered-in-error", _("entered in error")


class ImportBatchQuerySet(PersonOwnedQuerySet):
    pass


class ImportBatch(models.Model):
    """One upload or API call that brought readings in: lets a person list and delete imports."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="imports")
    source = models.CharField(max_length=32, help_text="api, fhir, dexcom, libre, nightscout, csv, demo")
    filename = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    n_created = models.PositiveIntegerField(default=0)
    n_duplicates = models.PositiveIntegerField(default=0)
    # Rows of the source that are not glucose readings (insulin, carbs, notes, Nightscout
    # calibrations...): counted so the summary accounts for every row, never silently dropped.
    n_skipped = models.PositiveIntegerField(default=0)
    # Treatments (insulin, carbs, steps, heart rate: observations.treatments) the import brought.
    n_treatments = models.PositiveIntegerField(default=0)
    n_treatment_duplicates = models.PositiveIntegerField(default=0)

    objects = ImportBatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "import batch"
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"{self.source} {self.filename} ({self.n_created})".strip()


class ObservationQuerySet(PersonOwnedQuerySet):
    def usable(self):
        return self.exclude(status=ObservationStatus.ENTERED_IN_ERROR)

    def in_range(self, start=None, end=None):
        qs = self
        if start is not None:
            qs = qs.filter(effective_at__gte=start)
        if end is not None:
            qs = qs.filter(effective_at__lte=end)
        return qs


class Observation(models.Model):
    class Kind(models.TextChoices):
        CGM = "cgm", _("CGM (interstitial)")
        BLOOD = "blood", _("Blood / capillary")

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="observations")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CGM)
    code_system = models.CharField(max_length=64, default="http://loinc.org")
    code = models.CharField(max_length=16, default="99504-3")
    display = models.CharField(max_length=128, blank=True)
    value_mg_dl = models.FloatField(help_text="Canonical value in mg/dL")
    original_value = models.FloatField()
    original_unit = models.CharField(max_length=16, help_text="UCUM unit of the original value")
    at_sensor_limit = models.BooleanField(
        default=False, help_text='The device reported "Low"/"High"; the value is the device limit.'
    )
    effective_at = models.DateTimeField()
    status = models.CharField(
        max_length=20, choices=ObservationStatus.choices, default=ObservationStatus.FINAL
    )
    device = models.CharField(max_length=128, blank=True)
    source = models.CharField(max_length=32, blank=True)
    import_batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.CASCADE, related_name="observations"
    )
    source_identifier = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ObservationQuerySet.as_manager()

    class Meta:
        ordering = ["effective_at"]
        constraints = [
            # Re-importing the same data is idempotent: one reading per person, kind and instant.
            models.UniqueConstraint(
                fields=["person", "kind", "effective_at"], name="observation_unique_per_instant"
            ),
        ]
        indexes = [models.Index(fields=["person", "effective_at"], name="observation_person_time")]

    def __str__(self) -> str:
        return f"{self.value_mg_dl:g} mg/dL at {self.effective_at:%Y-%m-%d %H:%M}"


# --- Similar past episodes ----------------------------------------------------------------------
# Embeddings of each person's 2-hour windows (observations.insights.embedding), searched with
# pgvector. Filled by observations.episodes.refresh_windows after every import.

from django.contrib.postgres.fields import ArrayField  # noqa: E402
from pgvector.django import HnswIndex, VectorField  # noqa: E402

from observations.insights.embedding import EMBEDDING_DIM, WINDOW_READINGS  # noqa: E402


class GlucoseWindowQuerySet(PersonOwnedQuerySet):
    pass


class GlucoseWindow(models.Model):
    """One 2-hour window of a person's readings (24 values on a 5-minute grid) and its embedding.

    Windows end on every UTC half hour that has a complete window, so they overlap by 90 minutes;
    the window ending 2 hours after another holds what followed it.
    """

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="glucose_windows")
    end_at = models.DateTimeField(help_text="Time of the window's last (24th) value")
    values = ArrayField(models.FloatField(), size=WINDOW_READINGS, help_text="mg/dL, oldest first")
    embedding = VectorField(dimensions=EMBEDDING_DIM)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = GlucoseWindowQuerySet.as_manager()

    class Meta:
        ordering = ["person_id", "end_at"]
        constraints = [
            models.UniqueConstraint(fields=["person", "end_at"], name="glucosewindow_unique_end"),
        ]
        indexes = [
            # L2 distance, as the embedding's scales are designed for (one unit = a typical difference).
            # m=8 / ef_construction=32: 28 dimensions need no denser graph (recall@40 stays ~1.0,
            # see bench/similar_episodes.py), and each insert costs a third of m=16 / 64.
            HnswIndex(
                name="glucosewindow_embedding_hnsw",
                fields=["embedding"],
                m=8,
                ef_construction=32,
                opclasses=["vector_l2_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.person} window ending {self.end_at:%Y-%m-%d %H:%M}"


# --- Nightscout connection (observations.nightscout) ---------------------------------------------
from observations.nightscout.models import NightscoutSource, NightscoutUploadSecret  # noqa: E402,F401


# --- Treatments (observations.treatments) ---------------------------------------------------------
from observations.treatments.models import Treatment  # noqa: E402,F401
