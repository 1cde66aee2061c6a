from django.urls import path

from persons.api import MeView

urlpatterns = [path("me/", MeView.as_view(), name="api-me")]
