"""Forecast API: thin views over predictions.services (always the caller's own data)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from mlmodels.models import MLModel
from observations.bounds import SettingsRateThrottle
from persons.services import person_for
from predictions import wording
from predictions.errors import BadForecastRequest, ForecastError
from predictions.models import PredictionLog, Source
from predictions.outcomes import performance_summary
from predictions.serializers import (
    ForecastErrorSerializer,
    ForecastRequestSerializer,
    ForecastResponseSerializer,
    ModelPerformanceResponseSerializer,
    PredictionLogSerializer,
)
from predictions.services import forecast_for_person, prediction_payload

REQUEST_FIELDS = {"horizons", "range", "history", "unit", "as_of"}
# What a request may never carry (only recorded, past treatments are inputs; no "what if I take
# N units"): named, so the 400 says why instead of "unknown field".
TREATMENT_FIELDS = {
    "treatments", "treatment", "insulin", "bolus", "basal", "temp_basal", "carbs", "carbohydrates", "meals",
    "meal", "steps", "heart_rate", "insulin_on_board", "carbs_on_board",
}


# Counted per user with one statement, shared by every process (persons.throttling).
ForecastRateThrottle = SettingsRateThrottle


def forecast_arguments(data) -> dict:
    """Request body -> keyword arguments of forecast_for_person (shape checks only)."""
    if not isinstance(data, dict):
        raise BadForecastRequest(wording.UNKNOWN_FIELDS % {"fields": type(data).__name__})
    treatments = sorted(set(map(str, data)) & TREATMENT_FIELDS)
    if treatments:
        raise BadForecastRequest(wording.TREATMENTS_NOT_ACCEPTED, field=treatments[0])
    unknown = sorted(set(data) - REQUEST_FIELDS)
    if unknown:
        raise BadForecastRequest(wording.UNKNOWN_FIELDS % {"fields": ", ".join(unknown)})
    range_value = data.get("range")
    if range_value not in (None, "24h"):
        raise BadForecastRequest(wording.BAD_RANGE, field="range")
    return {
        "horizons": data.get("horizons"),
        "range_24h": range_value == "24h",
        "history": data.get("history"),
        "unit": data.get("unit"),
        "as_of": data.get("as_of"),
    }


class GlucoseForecastView(APIView):
    """Forecast the caller's glucose from their own readings (or from readings sent along)."""

    throttle_classes = [ForecastRateThrottle]
    throttle_scope = "forecast"

    @extend_schema(
        request=ForecastRequestSerializer,
        responses={
            201: ForecastResponseSerializer,
            400: OpenApiResponse(ForecastErrorSerializer, description="Bad horizons, unit or history rows"),
            422: OpenApiResponse(
                ForecastErrorSerializer, description="No recent readings, or too few to forecast from"
            ),
            429: OpenApiResponse(description="Too many forecast requests"),
            503: OpenApiResponse(ForecastErrorSerializer, description="No model could answer (logged)"),
        },
        examples=[
            OpenApiExample("Default horizons", value={}, request_only=True),
            OpenApiExample("24 hours in mmol/L", value={"range": "24h", "unit": "mmol/L"}, request_only=True),
            OpenApiExample(
                "What if",
                value={
                    "horizons": [30, 60],
                    "history": [
                        {"effective_at": "2026-01-31T08:00:00+01:00", "value": 142, "unit": "mg/dL"},
                        {"effective_at": "2026-01-31T08:05:00+01:00", "value": 147, "unit": "mg/dL"},
                    ],
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request):
        person = person_for(request.user)
        try:
            log = forecast_for_person(person, **forecast_arguments(request.data), source="api")
        except ForecastError as exc:
            return Response(exc.detail, status=exc.status_code)
        return Response(prediction_payload(log), status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter(
                "source", str, enum=[choice for choice, _ in Source.choices],
                description="Only forecasts asked for through the API/pages, or only the scheduled batch ones",
            )
        ]
    )
)
class PredictionListView(generics.ListAPIView):
    """The caller's own forecasts, newest first, with actual outcomes once known."""

    serializer_class = PredictionLogSerializer

    def get_queryset(self):
        logs = PredictionLog.objects.for_user(self.request.user).order_by("-issued_at", "-id")
        source = self.request.query_params.get("source")
        if source is not None:
            if source not in Source.values:
                raise ValidationError({"source": f"use one of {', '.join(Source.values)}"})
            logs = logs.filter(source=source)
        return logs


class PredictionDetailView(generics.RetrieveAPIView):
    """One of the caller's forecasts with its actual outcomes (another person's id: 404)."""

    serializer_class = PredictionLogSerializer

    def get_queryset(self):
        return PredictionLog.objects.for_user(self.request.user)


class ModelPerformanceView(APIView):
    """Realized accuracy of one of the caller's model versions, by horizon, from the outcomes of
    its logged forecasts: MAE, RMSE (mg/dL) and how often the 80%/95% ranges held the reading."""

    @extend_schema(responses=ModelPerformanceResponseSerializer)
    def get(self, request, pk: int):
        mlmodel = get_object_or_404(MLModel.objects.for_user(request.user), pk=pk)
        return Response(performance_summary(mlmodel))
