"""The per-person treatment table: insulin, carbohydrates, steps and heart rate.

One table for every kind, not one per kind: all share a time, an amount with its unit, an
optional interval, their source, import and client identifier, and the features read them
together over one time range (insulin and carbs on board, time since the last meal, recent
steps), so one indexed range scan serves them. The kind-specific columns (insulin kind, bolus
type, absorption time) are few and nullable. FHIR alignment is per kind (observations.treatments
.codes): Observations for carbs, steps and heart rate, MedicationAdministration for insulin.

Imported by observations.models so Django registers it with the observations app; row-level
security and erasure cover it like every table with a foreign key to Person (config/rls.py,
config/account.py find them from the models).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from observations.treatments import codes
from persons.models import Person, PersonOwnedQuerySet


class TreatmentQuerySet(PersonOwnedQuerySet):
    def usable(self):
        """What may be a model input: not withdrawn by its source."""
        return self.filter(is_valid=True)

    def in_range(self, start=None, end=None):
        qs = self
        if start is not None:
            qs = qs.filter(effective_at__gte=start)
        if end is not None:
            qs = qs.filter(effective_at__lte=end)
        return qs

    def modified_since(self, moment):
        """For Nightscout API v3 `history`: rows created, changed or withdrawn after `moment`."""
        return self.filter(modified_at__gt=moment).order_by("modified_at", "pk")


class Treatment(models.Model):
    class Kind(models.TextChoices):
        BOLUS = codes.BOLUS, _("insulin bolus")
        BASAL_RATE = codes.BASAL_RATE, _("basal insulin rate")
        TEMP_BASAL = codes.TEMP_BASAL, _("temporary basal rate")
        CARBS = codes.CARBS, _("carbohydrates")
        STEPS = codes.STEPS, _("steps")
        HEART_RATE = codes.HEART_RATE, _("heart rate")

    class InsulinKind(models.TextChoices):
        RAPID = codes.RAPID, _("rapid-acting")
        ULTRA_RAPID = codes.ULTRA_RAPID, _("ultra-rapid-acting")
        REGULAR = codes.REGULAR, _("regular")
        INTERMEDIATE = codes.INTERMEDIATE, _("intermediate-acting")
        LONG_ACTING = codes.LONG_ACTING, _("long-acting")

    class BolusType(models.TextChoices):
        MEAL = codes.MEAL, _("meal")
        CORRECTION = codes.CORRECTION, _("correction")
        SMB = codes.SMB, _("super micro bolus")
        EXTENDED = codes.EXTENDED, _("extended")

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="treatments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    effective_at = models.DateTimeField(help_text="When it was given, eaten or measured (the start of an interval)")
    duration = models.DurationField(
        null=True, blank=True,
        help_text="Temporary basal, extended bolus or carbs eaten over a time, steps counted over an interval",
    )
    amount = models.FloatField(help_text="In `unit`: U, U/h, g, {steps}, /min")
    unit = models.CharField(max_length=16, help_text="UCUM unit, canonical for the kind")
    insulin_kind = models.CharField(max_length=16, choices=InsulinKind.choices, null=True, blank=True)
    bolus_type = models.CharField(max_length=16, choices=BolusType.choices, null=True, blank=True)
    absorption = models.DurationField(
        null=True, blank=True, help_text="Carbs: the absorption time the app recorded (Loop's absorptionTime)"
    )
    is_valid = models.BooleanField(
        default=True,
        help_text="False: withdrawn by its source (Nightscout isValid false / API v3 delete); kept so "
                  "'history' reports it, never a model input",
    )
    device = models.CharField(max_length=128, blank=True)
    source = models.CharField(max_length=32, help_text="api, fhir, csv, nightscout-upload, nightscout-pull, nightscout-v3, demo")
    import_batch = models.ForeignKey(
        "observations.ImportBatch", null=True, blank=True, on_delete=models.CASCADE, related_name="treatments"
    )
    source_identifier = models.CharField(
        max_length=128,
        help_text="The client's id (Nightscout identifier/_id, Loop syncIdentifier, xDrip+ uuid, pump "
                  "ids), or kind@epoch-ms where the source has none: a re-send is a duplicate",
    )
    client_fields = models.JSONField(
        default=dict, blank=True,
        help_text="Source fields glucast does not model but a sync partner needs back (pumpId, pumpType, "
                  "pumpSerial, app, utcOffset, eventType): scalars only, bounded",
    )
    created_at = models.DateTimeField()
    modified_at = models.DateTimeField(help_text="Server time of the last change, for 'modified since' sync")

    objects = TreatmentQuerySet.as_manager()

    class Meta:
        ordering = ["effective_at", "pk"]
        constraints = [
            # Re-sending is idempotent: one treatment per person and client identifier.
            models.UniqueConstraint(fields=["person", "source_identifier"], name="treatment_unique_identifier"),
            models.CheckConstraint(
                condition=models.Q(kind__in=list(codes.KINDS)), name="treatment_known_kind"
            ),
        ]
        indexes = [
            models.Index(fields=["person", "effective_at"], name="treatment_person_time"),
            models.Index(fields=["person", "modified_at"], name="treatment_person_modified"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:g} {self.unit} at {self.effective_at:%Y-%m-%d %H:%M}"

    @property
    def fhir_resource(self) -> str:
        return codes.TREATMENT_KINDS[self.kind].fhir_resource
