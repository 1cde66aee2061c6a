"""API shapes for readings and imports. Input readings are checked by the one validation path
(observations.validation), not by these serializers: they document the shapes for OpenAPI and
render output."""

from rest_framework import serializers

from observations.importers import FORMAT_CHOICES
from observations.models import ImportBatch, Observation
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
    skipped = serializers.IntegerField(help_text="Source rows that are not glucose readings.")
    skipped_reasons = serializers.DictField(child=serializers.IntegerField())


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
        fields = ["id", "source", "filename", "created_at", "n_created", "n_duplicates", "n_skipped"]
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
    }
