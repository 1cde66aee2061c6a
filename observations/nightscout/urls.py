"""Routes of the Nightscout surface, mounted at /ns/ by config.urls (so /ns/api/v1/...)."""

from django.urls import re_path

from observations.nightscout import api

urlpatterns = [
    re_path(r"^api/v1/entries(?:\.json)?/?$", api.EntriesView.as_view(), name="ns-entries"),
    # No captured parameter: these are not object ids (the privacy audit maps every id route).
    re_path(r"^api/v1/entries/sgv(?:\.json)?/?$", api.EntriesView.as_view(), {"kind": "sgv"}, name="ns-entries-sgv"),
    re_path(r"^api/v1/entries/(?:mbg|cal)(?:\.json)?/?$", api.EntriesView.as_view(), {"kind": "other"}, name="ns-entries-other"),
    re_path(r"^api/v1/status(?:\.json)?/?$", api.StatusView.as_view(), name="ns-status"),
    re_path(r"^api/v1/verifyauth/?$", api.VerifyAuthView.as_view(), name="ns-verifyauth"),
    # Loop checks its credentials with this one.
    re_path(r"^api/v1/experiments/test/?$", api.VerifyAuthView.as_view(), name="ns-experiments-test"),
    re_path(
        r"^api/v1/treatments(?:\.json)?/?$",
        api.TreatmentsView.as_view(),
        name="ns-treatments",
    ),
    re_path(
        r"^api/v1/devicestatus(?:\.json)?/?$",
        api.NotStoredView.as_view(collection="device status"),
        name="ns-devicestatus",
    ),
]
