from django.urls import path

from mlmodels.views import artifact_download

urlpatterns = [
    path("models/artifacts/<str:token>/", artifact_download, name="artifact-download"),
]
