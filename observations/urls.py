from django.urls import path

from observations import views

urlpatterns = [
    path("insights/", views.insights, name="insights"),
    path("data/", views.data, name="data"),
    path("data/upload/", views.upload, name="data-upload"),
    path("data/imports/<int:batch_id>/delete/", views.delete_import, name="data-import-delete"),
]
