"""Rows of the Nightscout connection: a person's upload secret and their own Nightscout site.

Imported by observations.models so Django registers them with the observations app.
"""

from django.db import models

from persons.models import Person, PersonOwnedQuerySet


class UploadSecretQuerySet(PersonOwnedQuerySet):
    pass


class NightscoutUploadSecret(models.Model):
    """The secret a person's CGM app sends to glucast's Nightscout upload surface.

    Only `lookup` is stored: SHA-256 of the SHA-1 hex that apps send as `api-secret`. The
    secret is 32 random URL-safe characters (192 bits) made by glucast, so a fast hash is
    enough (nothing to brute-force) and the unique index finds the person in one query. The
    plaintext is shown once, when it is made.
    """

    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="nightscout_secret")
    lookup = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=8, help_text="The secret's first characters, to recognise it")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = UploadSecretQuerySet.as_manager()

    def __str__(self) -> str:
        return f"upload secret {self.hint}… of {self.person}"


class NightscoutSourceQuerySet(PersonOwnedQuerySet):
    def due(self, now):
        return self.filter(enabled=True, next_attempt_at__lte=now)


class NightscoutSource(models.Model):
    """A person's own Nightscout site, pulled every few minutes for new entries."""

    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="nightscout_source")
    url = models.URLField(max_length=300, help_text="The site's base address, e.g. https://example.herokuapp.com/")
    # Needed in plaintext to call the site; never shown back in full (only `token_hint`).
    access_token = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Entries up to this instant are known to be stored: the next pull asks only for newer ones.
    cursor_at = models.DateTimeField(null=True, blank=True)
    # A catch-up larger than one run's page budget continues below this instant next time.
    backfill_before = models.DateTimeField(null=True, blank=True)
    backfill_newest = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_n_created = models.PositiveIntegerField(default=0)
    # Treatments (insulin, carbs, temp basals) are walked the same way, on created_at, with a
    # cursor of their own; their failure is shown but does not stop or back off the readings.
    treatments_cursor_at = models.DateTimeField(null=True, blank=True)
    treatments_backfill_before = models.DateTimeField(null=True, blank=True)
    treatments_backfill_newest = models.DateTimeField(null=True, blank=True)
    treatments_last_error = models.TextField(blank=True)
    last_n_treatments = models.PositiveIntegerField(default=0)

    objects = NightscoutSourceQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.url} of {self.person}"

    @property
    def token_hint(self) -> str:
        return f"{self.access_token[:4]}…" if self.access_token else ""
