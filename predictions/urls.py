from django.urls import path

from predictions import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("retrain/", views.retrain, name="retrain"),
    path("forecasts/<int:prediction_id>/feedback/", views.feedback, name="forecast-feedback"),
    # Prometheus scrape endpoint: staff session or `Authorization: Bearer $GLUCAST_METRICS_TOKEN`.
    path("metrics", views.metrics, name="metrics"),
]
