"""API shapes for readings and imports. Input readings are checked by the one validation path
(observations.validation), not by these serializers: they document the shapes for OpenAPI and
render output."""

from rest_framework import serializers

from observations.importers import FORMAT_CHOICES
from observations.models import ImportBatch, Observation, Treatment
from observations.treatments import codes as treatment_codes
from observations.units import UNITS


class ObservationInSerializer(serializers.Serializer):
    effective_at = serializers.CharField(
        help_text="ISO 8601 date and time. Without an offset it is read in your time zone."
    )
    value = serializers.FloatField(
        help_text='Glucose value in `unit`; the strings "Low"/"High" store the sensor limits '
        "(40/400 mg/dL) flagged at_sensor_limit."
    )
    unit = serializers.ChoiceField(choices=UNITS)
    person = serializers.IntegerField(
        required=False, help_text="Optional; your own person id. Another person's id answers 404."
    )
    code = serializers.CharField(
        required=False,
        help_text="LOINC code; default 99504-3 (mg/dL) or 105272-9 (mmol/L), CGM in interstitial "
        "fluid. Blood/capillary codes 2339-0, 15074-8, 41653-7, 14743-9 are accepted.",
    )


class ImportSummarySerializer(serializers.Serializer):
    import_id = serializers.IntegerField()
    format = serializers.CharField(help_text="api, fhir, dexcom, libre, nightscout or csv")
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Readings already stored (same kind and time).")
    skipped = serializers.IntegerField(help_text="Source rows glucast does not store, counted by reason.")
    skipped_reasons = serializers.DictField(child=serializers.IntegerField())
    treatments = serializers.IntegerField(help_text="Treatments stored (insulin, carbs, steps, heart rate).")
    treatment_duplicates = serializers.IntegerField(help_text="Treatments already stored (same identifier).")


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(
        help_text="Line in a CSV file, 1-based position in a JSON list or Bundle; 0 = the input as a whole."
    )
    field = serializers.CharField()
    reason = serializers.CharField()


class ImportErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    error_count = serializers.IntegerField()
    errors = RowErrorSerializer(many=True)
    more_errors = serializers.IntegerField(help_text="Errors beyond the listed ones.")


class ObservationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Observation
        fields = [
            "id", "effective_at", "value_mg_dl", "original_value", "original_unit", "kind",
            "code_system", "code", "display", "status", "at_sensor_limit", "device", "source",
            "source_identifier", "import_batch", "created_at",
        ]
        read_only_fields = fields


class ObservationQuerySerializer(serializers.Serializer):
    start = serializers.CharField(required=False, help_text="ISO 8601; naive = your time zone.")
    end = serializers.CharField(required=False, help_text="ISO 8601; naive = your time zone.")


class ImportBatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportBatch
        fields = ["id", "source", "filename", "created_at", "n_created", "n_duplicates", "n_skipped",
                  "n_treatments", "n_treatment_duplicates"]
        read_only_fields = fields


class FileImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="Dexcom Clarity CSV, LibreView CSV, Nightscout entries "
                                 "JSON, FHIR Bundle JSON or plain CSV (time,value[,unit]).")
    format = serializers.ChoiceField(choices=FORMAT_CHOICES, default="auto", required=False)


def import_summary(batch, *, fmt: str, skipped_reasons=None) -> dict:
    return {
        "import_id": batch.pk,
        "format": fmt,
        "created": batch.n_created,
        "duplicates": batch.n_duplicates,
        "skipped": batch.n_skipped,
        "skipped_reasons": dict(skipped_reasons or {}),
        "treatments": batch.n_treatments,
        "treatment_duplicates": batch.n_treatment_duplicates,
    }


# --- Treatments ---------------------------------------------------------------------------------


class TreatmentInSerializer(serializers.Serializer):
    """Documents the input; the checks are observations.treatments.validation's."""

    kind = serializers.ChoiceField(choices=treatment_codes.KINDS)
    effective_at = serializers.CharField(
        help_text="ISO 8601 date and time it was given, eaten or measured (the start of an interval). "
        "Without an offset it is read in your time zone. Only past treatments: no plans."
    )
    amount = serializers.FloatField(
        help_text="bolus 0-100 U, basal_rate / temp_basal 0-35 U/h, carbs 0-500 g, steps 0-100,000 "
        "(at most 300 a minute), heart_rate 20-250 /min."
    )
    unit = serializers.CharField(required=False, help_text="UCUM; default the kind's: U, U/h, g, {steps}, /min.")
    duration_min = serializers.FloatField(
        required=False, help_text="Minutes, up to 1,440: required for temp_basal and steps; an extended "
        "bolus, carbs eaten over a time, a heart-rate average's interval."
    )
    insulin_kind = serializers.ChoiceField(choices=treatment_codes.INSULIN_KINDS, required=False,
                                           help_text="Insulin only; product names such as Fiasp or Lantus are accepted.")
    bolus_type = serializers.ChoiceField(choices=treatment_codes.BOLUS_TYPES, required=False)
    absorption_min = serializers.FloatField(required=False, help_text="Carbs only: the absorption time you recorded.")
    identifier = serializers.CharField(
        required=False, help_text="Your own id for it: sending it again is a duplicate. Default: kind and time."
    )
    device = serializers.CharField(required=False)


class TreatmentSerializer(serializers.ModelSerializer):
    duration_min = serializers.SerializerMethodField()
    absorption_min = serializers.SerializerMethodField()
    fhir_resource = serializers.CharField(read_only=True, help_text="Observation (carbs, steps, heart rate) or "
                                          "MedicationAdministration (insulin)")

    class Meta:
        model = Treatment
        fields = [
            "id", "kind", "effective_at", "amount", "unit", "duration_min", "insulin_kind", "bolus_type",
            "absorption_min", "is_valid", "device", "source", "source_identifier", "import_batch",
            "fhir_resource", "created_at", "modified_at",
        ]
        read_only_fields = fields

    def get_duration_min(self, treatment) -> float | None:
        return None if treatment.duration is None else treatment.duration.total_seconds() / 60.0

    def get_absorption_min(self, treatment) -> float | None:
        return None if treatment.absorption is None else treatment.absorption.total_seconds() / 60.0


class TreatmentQuerySerializer(ObservationQuerySerializer):
    kind = serializers.MultipleChoiceField(choices=treatment_codes.KINDS, required=False,
                                           help_text="Repeatable: kind=bolus&kind=carbs.")
    import_batch = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="Only one of your imports.")


class TreatmentImportSummarySerializer(serializers.Serializer):
    import_id = serializers.IntegerField(allow_null=True)
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Treatments already stored (same identifier), or repeated.")
