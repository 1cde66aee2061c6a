"""Background work of the observations app (django-q2)."""

from datetime import datetime

from observations.episodes import WINDOW_SPAN, refresh_windows
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
