"""Background work of the observations app (django-q2)."""

from datetime import datetime

from observations.episodes import WINDOW_SPAN, refresh_windows
from observations.nightscout.models import NightscoutSource
from observations.nightscout.pull import pull_due_sources, pull_source
from persons.erasure import ERASED, erasure_mark
from persons.models import Person
from persons.row_security import everyone, for_person


def refresh_windows_task(person_id: int, start: str, end: str) -> int | str:
    """Embed the similar-episode windows over [start, end] (ISO instants) of one person.

    Runs in the worker because a year of readings takes tens of seconds to embed. Idempotent:
    windows already stored are kept.
    """
    with for_person(person_id):  # sees and writes only this person's rows
        person = Person.objects.filter(pk=person_id).first()
        if person is None:  # deleted meanwhile
            return ERASED
        mark = person.erasures
        created = refresh_windows(
            person, start=datetime.fromisoformat(start), end=datetime.fromisoformat(end) + WINDOW_SPAN
        )
        if erasure_mark(person_id) != mark:
            return ERASED  # the person's data was deleted meanwhile: no result row names them
        return created


def pull_nightscout_sites_task() -> int:
    """Every 5 minutes: enqueue a pull for each registered Nightscout site that is due."""
    with everyone("Nightscout pulls due"):  # looks at every person's site
        return pull_due_sources()


def pull_nightscout_source_task(source_id: int) -> dict | str:
    """Pull one person's Nightscout site (its status fields record the outcome)."""
    with everyone("find a Nightscout site's person"):
        person_id = NightscoutSource.objects.filter(pk=source_id).values_list("person_id", flat=True).first()
    if person_id is None:  # removed meanwhile
        return {"ok": False, "error": "removed"}
    with for_person(person_id):  # the pull sees and writes only this person's rows
        source = NightscoutSource.objects.select_related("person").filter(pk=source_id, enabled=True).first()
        if source is None:  # removed or disabled meanwhile
            return {"ok": False, "error": "removed"}
        outcome = pull_source(source)
        return ERASED if outcome.get("error") == ERASED else outcome
