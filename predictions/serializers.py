"""Request/response shapes of the forecast API (for the OpenAPI schema and the list views).

Validation of a forecast request happens in predictions.services (one place for the API and the
pages, with messages that say what to fix); these serializers describe the shapes exactly.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlmodels.models import Variant
from observations.units import UNITS
from predictions import wording
from predictions.services import prediction_payload


class HistoryReadingSerializer(serializers.Serializer):
    effective_at = serializers.DateTimeField(help_text="ISO 8601 with a UTC offset")
    value = serializers.FloatField()
    unit = serializers.ChoiceField(choices=UNITS, required=False, default="mg/dL")


class ForecastRequestSerializer(serializers.Serializer):
    horizons = serializers.ListField(
        child=serializers.IntegerField(min_value=5, max_value=1440),
        required=False,
        help_text="Minutes ahead, distinct multiples of 5 from 5 to 1440. Default [30, 60, 120].",
    )
    range = serializers.ChoiceField(
        choices=["24h"], required=False, help_text='"24h": a point every 15 minutes over 24 hours.'
    )
    history = HistoryReadingSerializer(
        many=True,
        required=False,
        help_text="Readings to forecast from instead of the stored ones (nothing is stored).",
    )
    unit = serializers.ChoiceField(
        choices=UNITS, required=False, help_text="Unit of the answer; default: your preference."
    )
    as_of = serializers.DateTimeField(
        required=False,
        help_text="Forecast time (default now; with `history`, the time of its last reading).",
    )


class CalibrationSerializer(serializers.Serializer):
    version = serializers.CharField(allow_null=True, help_text="The model version whose bands answered")
    kind = serializers.ChoiceField(
        choices=["training", "personal"],
        help_text="training: the bands calibrated when the model (or the population prior) was made; "
        "personal: calibrated since from this person's own matched outcomes",
    )
    outcomes_used = serializers.IntegerField(help_text="The person's matched outcomes the personal calibration used")
    updated_at = serializers.DateTimeField(allow_null=True)


class ForecastModelSerializer(serializers.Serializer):
    type = serializers.CharField()
    version = serializers.CharField()
    variant = serializers.ChoiceField(choices=Variant.choices)
    algorithm = serializers.CharField()
    calibration = CalibrationSerializer()


class ForecastPointSerializer(serializers.Serializer):
    horizon_min = serializers.IntegerField()
    time = serializers.DateTimeField()
    value = serializers.FloatField()
    lower_80 = serializers.FloatField()
    upper_80 = serializers.FloatField()
    lower_95 = serializers.FloatField()
    upper_95 = serializers.FloatField()


class LoggedPointSerializer(ForecastPointSerializer):
    actual = serializers.FloatField(allow_null=True, help_text="The reading nearest the point's time (within 5 min), once known")
    actual_at = serializers.DateTimeField(allow_null=True)


class TopFeatureSerializer(serializers.Serializer):
    feature = serializers.CharField()
    contribution = serializers.FloatField(help_text="mg/dL this input moved the forecast")


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]})
class ObservationRefField(serializers.Field):
    """A stored reading's id, or the time of a reading sent in `history`."""


class ProvenanceSerializer(serializers.Serializer):
    window_start = serializers.DateTimeField(allow_null=True)
    window_end = serializers.DateTimeField(allow_null=True)
    n_readings = serializers.IntegerField()
    observations = serializers.ListField(child=ObservationRefField())
    top_features = TopFeatureSerializer(many=True)


class QualitySerializer(serializers.Serializer):
    gaps_in_window = serializers.IntegerField()
    data_age_min = serializers.FloatField()
    reason = serializers.CharField(
        required=False,
        help_text="Why no personal model answered (variants population and short_history): what the "
        "forecast is based on instead.",
    )


class ForecastResponseSerializer(serializers.Serializer):
    prediction_id = serializers.IntegerField()
    issued_at = serializers.DateTimeField()
    as_of = serializers.DateTimeField(help_text="Time of the last reading used")
    unit = serializers.ChoiceField(choices=UNITS)
    model = ForecastModelSerializer()
    points = ForecastPointSerializer(many=True)
    provenance = ProvenanceSerializer()
    quality = QualitySerializer()
    disclaimer = serializers.CharField(default=str(wording.DISCLAIMER))


class PredictionLogSerializer(ForecastResponseSerializer):
    """A logged forecast with its outcomes (actual values fill in as readings arrive)."""

    points = LoggedPointSerializer(many=True)
    source = serializers.CharField()

    def to_representation(self, instance):
        return prediction_payload(instance, with_outcomes=True)


class ForecastErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
    rows = serializers.ListField(child=serializers.DictField(), required=False)


class HorizonPerformanceSerializer(serializers.Serializer):
    horizon_min = serializers.IntegerField()
    n_matched = serializers.IntegerField()
    mae_mg_dl = serializers.FloatField(allow_null=True)
    rmse_mg_dl = serializers.FloatField(allow_null=True)
    coverage_80 = serializers.FloatField(allow_null=True)
    coverage_95 = serializers.FloatField(allow_null=True)


class PerformanceModelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.CharField()
    algorithm = serializers.CharField()
    status = serializers.CharField()
    is_active = serializers.BooleanField()


class ModelPerformanceResponseSerializer(serializers.Serializer):
    model = PerformanceModelSerializer()
    horizons = HorizonPerformanceSerializer(many=True)
