from django.urls import path

from mlmodels.api import (
    MLModelDetailView,
    MLModelListView,
    TrainingJobDetailView,
    TrainingJobListView,
    TrainView,
)

urlpatterns = [
    path("models/", MLModelListView.as_view(), name="api-models"),
    path("models/train/", TrainView.as_view(), name="api-models-train"),
    path("models/jobs/", TrainingJobListView.as_view(), name="api-training-jobs"),
    path("models/jobs/<int:pk>/", TrainingJobDetailView.as_view(), name="api-training-job"),
    path("models/<int:pk>/", MLModelDetailView.as_view(), name="api-model-detail"),
]
