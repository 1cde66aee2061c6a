"""Background work of the observations app (django-q2)."""

from datetime import datetime

from observations.episodes import WINDOW_SPAN, refresh_windows
from observations.nightscout.models import NightscoutSource
from observations.nightscout.pull import pull_due_sources, pull_source
from persons.models import Person


def refresh_windows_task(person_id: int, start: str, end: str) -> int:
    """Embed the similar-episode windows over [start, end] (ISO instants) of one person.

    Runs in the worker because a year of readings takes tens of seconds to embed. Idempotent:
    windows already stored are kept.
    """
    person = Person.objects.filter(pk=person_id).first()
    if person is None:  # deleted meanwhile
        return 0
    return refresh_windows(
        person, start=datetime.fromisoformat(start), end=datetime.fromisoformat(end) + WINDOW_SPAN
    )


def pull_nightscout_sites_task() -> int:
    """Every 5 minutes: enqueue a pull for each registered Nightscout site that is due."""
    return pull_due_sources()


def pull_nightscout_source_task(source_id: int) -> dict:
    """Pull one person's Nightscout site (its status fields record the outcome)."""
    source = NightscoutSource.objects.select_related("person").filter(pk=source_id, enabled=True).first()
    if source is None:  # removed meanwhile
        return {"ok": False, "error": "removed"}
    return pull_source(source)
