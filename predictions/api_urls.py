from django.urls import path

from predictions.api import (
    GlucoseForecastView,
    ModelPerformanceView,
    PredictionDetailView,
    PredictionListView,
)

urlpatterns = [
    path("predictions/glucose/", GlucoseForecastView.as_view(), name="api-forecast-glucose"),
    path("predictions/", PredictionListView.as_view(), name="api-predictions"),
    path("predictions/<int:pk>/", PredictionDetailView.as_view(), name="api-prediction-detail"),
    path("models/<int:pk>/performance/", ModelPerformanceView.as_view(), name="api-model-performance"),
]
