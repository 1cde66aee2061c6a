from django.urls import path

from observations import views

urlpatterns = [
    path("insights/", views.insights, name="insights"),
    path("data/", views.data, name="data"),
    path("data/upload/", views.upload, name="data-upload"),
    path("data/imports/<int:batch_id>/delete/", views.delete_import, name="data-import-delete"),
    path("data/nightscout/secret/", views.nightscout_secret, name="data-ns-secret"),
    path("data/nightscout/secret/remove/", views.nightscout_secret_revoke, name="data-ns-secret-remove"),
    path("data/nightscout/token/", views.nightscout_token, name="data-ns-token"),
    path("data/nightscout/token/remove/", views.nightscout_token_revoke, name="data-ns-token-remove"),
    path("data/nightscout/site/", views.nightscout_source, name="data-ns-source"),
    path("data/nightscout/site/remove/", views.nightscout_source_remove, name="data-ns-source-remove"),
]
