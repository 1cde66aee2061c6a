from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views
from observations.nightscout.v3 import AuthorizationRequestView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    # AndroidAPS asks for its Nightscout API v3 JWT here, at the root, whatever its Nightscout URL
    # (an absolute path in its client); the same view answers at /ns/api/v2/... A JWT opens
    # /ns/api/v3 only. The group is a credential, not an object id (see observations.nightscout.urls).
    re_path(r"^api/v2/authorization/request/([^/]{1,200})/?$", AuthorizationRequestView.as_view(),
            name="ns-v2-authorization-root"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    # Each app owns its API routes (api_urls) and its pages (urls).
    path("api/", include("persons.api_urls")),
    path("api/", include("observations.api_urls")),
    path("api/", include("mlmodels.api_urls")),
    path("api/", include("predictions.api_urls")),
    # Whole-account deletion spans every app, so the site layer owns it.
    path("data/delete-all/", views.delete_all, name="data-delete-all"),
    # Nightscout's REST API v1 for CGM uploaders (xDrip+, Loop, ...): https://host/ns/
    path("ns/", include("observations.nightscout.urls")),
    path("", include("mlmodels.urls")),
    path("", include("predictions.urls")),
    path("", include("observations.urls")),
    path("", include("persons.urls")),
]
