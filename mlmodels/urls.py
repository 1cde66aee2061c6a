from django.urls import path

from mlmodels.lifecycle_views import artifact_download, metrics

urlpatterns = [
    # Prometheus scrape endpoint: staff session or `Authorization: Bearer $GLUCAST_METRICS_TOKEN`.
    path("metrics", metrics, name="metrics"),
    path("models/artifacts/<str:token>/", artifact_download, name="artifact-download"),
]
