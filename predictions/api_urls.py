from django.urls import path

from predictions.api import (
    GlucoseForecastView,
    ModelPerformanceView,
    PredictionDetailView,
    PredictionListView,
)
from predictions.feedback_api import PredictionFeedbackView

urlpatterns = [
    path("predictions/glucose/", GlucoseForecastView.as_view(), name="api-forecast-glucose"),
    path("predictions/", PredictionListView.as_view(), name="api-predictions"),
    path("predictions/<int:pk>/", PredictionDetailView.as_view(), name="api-prediction-detail"),
    path(
        "predictions/<int:pk>/feedback/", PredictionFeedbackView.as_view(), name="api-prediction-feedback"
    ),
    path("models/<int:pk>/performance/", ModelPerformanceView.as_view(), name="api-model-performance"),
]
