"""The one table of the site itself: which people the demo loader made.

`DemoPerson` is the demo's marker, written only by config.demo.load_demo. Everything the demo
does to people on its own — replacing their readings on each start, the live replay of their
recording (config/demo_live.py) — selects through this table, never by user name or import
source (tests and importers may leave "demo" imports on anyone), so a real person is never
touched.
"""

from django.db import models

from observations.models import ImportBatch
from persons.models import Person, PersonOwnedQuerySet


class DemoPersonQuerySet(PersonOwnedQuerySet):
    def replaying(self):
        """Demo people whose recording is still there to replay (a deleted import ends it)."""
        return self.filter(recording__isnull=False)


class DemoPerson(models.Model):
    """A person the demo loader created, and the recording its live replay continues.

    The replay places copies of the recording one after another from `replay_from` on (the
    instant one reading interval after the shifted recording's last reading); `next_reading_at`
    is only when the next one is due, so the every-minute task skips the others cheaply."""

    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="demo")
    origin = models.CharField(max_length=64, help_text="Where the readings come from (a study, or synthetic)")
    recording = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The demo import whose readings are replayed; deleting it ends the replay",
    )
    replay_from = models.DateTimeField(help_text="Where the first replayed copy of the recording starts")
    next_reading_at = models.DateTimeField(help_text="When the next replayed reading is due")
    loaded_at = models.DateTimeField()

    objects = DemoPersonQuerySet.as_manager()

    class Meta:
        verbose_name = "demo person"
        verbose_name_plural = "demo people"

    def __str__(self) -> str:
        return f"demo person {self.person}"
