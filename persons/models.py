import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not an IANA time zone."), params={"value": value})


class GlucoseUnit(models.TextChoices):
    MG_DL = "mg/dL", "mg/dL"
    MMOL_L = "mmol/L", "mmol/L"


class PersonQuerySet(models.QuerySet):
    def for_user(self, user):
        """The only way to reach Person rows from user-facing code: the caller's own."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user)


class PersonOwnedQuerySet(models.QuerySet):
    """Ownership filter shared by every per-person model of every app: rows of the caller's own
    Person. It lives on the ground floor so each app's models can use it without importing another
    app's models."""

    person_field = "person"

    def for_user(self, user):
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(**{f"{self.person_field}__owner": user})

    def for_person(self, person):
        return self.filter(**{self.person_field: person})


class Person(models.Model):
    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="person"
    )
    display_name = models.CharField(max_length=150)
    time_zone = models.CharField(max_length=64, default="Europe/Berlin", validators=[validate_time_zone])
    preferred_unit = models.CharField(
        max_length=8, choices=GlucoseUnit.choices, default=GlucoseUnit.MG_DL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # How often "delete all my data" ran: background writers compare it (persons/erasure.py).
    erasures = models.PositiveIntegerField(default=0, editable=False)

    objects = PersonQuerySet.as_manager()

    class Meta:
        ordering = ["display_name"]
        verbose_name = "person"
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.display_name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class RateCounter(models.Model):
    """One fixed-window request counter per throttle key (persons.throttling): shared by every
    web process and machine, updated with one statement per request. Not per-person data (the
    key names a user and a scope), and one row per key however long it is used."""

    key = models.CharField(max_length=200, primary_key=True)
    window_index = models.BigIntegerField(help_text="Index of the current window (epoch seconds // window length)")
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.count} in window {self.window_index}"
