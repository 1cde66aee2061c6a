"""Routes of the Nightscout surface, mounted at /ns/ by config.urls (so /ns/api/v1/...)."""

from django.urls import re_path

from observations.nightscout import api, v3

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
    # Nightscout's token exchange; also at the site root (config.urls), where AndroidAPS asks.
    # The unnamed group is a credential, not an object id: the privacy audit maps routes that
    # name a person's objects, and this one answers only to the token itself.
    re_path(r"^api/v2/authorization/request/([^/]{1,200})/?$", v3.AuthorizationRequestView.as_view(),
            name="ns-v2-authorization"),
    re_path(r"^api/v3/version/?$", v3.VersionView.as_view(), name="ns3-version"),
    re_path(r"^api/v3/status/?$", v3.StatusView.as_view(), name="ns3-status"),
    re_path(r"^api/v3/lastModified/?$", v3.LastModifiedView.as_view(), name="ns3-last-modified"),
]

for _collection in ("entries", "treatments", "devicestatus", "profile", "food", "settings"):
    urlpatterns += [
        re_path(rf"^api/v3/{_collection}/?$", v3.CollectionView.as_view(collection=_collection),
                name=f"ns3-{_collection}"),
        # The unnamed group is a modification time, not an object id (see the privacy audit).
        re_path(rf"^api/v3/{_collection}/history(?:/([^/]{{1,40}}))?/?$",
                v3.HistoryView.as_view(collection=_collection), name=f"ns3-{_collection}-history"),
        re_path(rf"^api/v3/{_collection}/(?P<identifier>[^/]{{1,128}})/?$",
                v3.DocumentView.as_view(collection=_collection), name=f"ns3-{_collection}-document"),
    ]

urlpatterns += [re_path(r"^api/v3(?:/.*)?$", v3.UnknownView.as_view(), name="ns3-unknown")]
