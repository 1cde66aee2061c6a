"""Storing and serving Nightscout entries for one person; used by the /ns/ API and the pull.

    store_entries(person, document, *, channel, now=None) -> dict   validate all, store new ones
    entries_for(person, *, count, bounds) -> list[dict]             newest first, Nightscout shape

Entries go through the one validation path and the idempotent bulk insert of every import
(observations.services.import_readings): re-sending the last hour adds nothing. Each channel
gathers a day's readings (the person's local day) in one import on the data page, so deleting
"live upload 2026-11-29" removes that day's live readings and nothing else.
"""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

from django.utils import timezone

from observations.models import ImportBatch, Observation
from observations.nightscout.entries import check_entries, parse_entries
from observations.services import import_readings, schedule_window_refresh

UPLOAD = "nightscout-upload"
PULL = "nightscout-pull"
V3_UPLOAD = "nightscout-v3"  # Nightscout API v3 (AndroidAPS' NSClientV3)
CHANNEL_LABELS = {UPLOAD: "live upload", PULL: "Nightscout pull", V3_UPLOAD: "API v3 upload"}


def _day_batch(person, channel: str, now: datetime) -> ImportBatch:
    filename = f"{CHANNEL_LABELS[channel]} {now.astimezone(person.tz):%Y-%m-%d}"
    batch = ImportBatch.objects.for_person(person).filter(source=channel, filename=filename).order_by("pk").first()
    return batch or ImportBatch.objects.create(person=person, source=channel, filename=filename)


def store_entries(person, document, *, channel: str, max_entries: int | None = None, now=None) -> dict:
    """Validate every entry and store the new readings; raises ImportRejected (nothing stored).

    Returns the summary the API answers: entries received, readings created, duplicates,
    skipped entries with their reasons, and the span of the readings sent."""
    now = now or timezone.now()
    parsed = parse_entries(document, max_entries=max_entries)
    readings = check_entries(parsed, tz=person.tz, now=now)
    created = duplicates = 0
    span = None
    if readings:
        batch = _day_batch(person, channel, now)
        before = (batch.n_created, batch.n_duplicates)
        batch = import_readings(person, readings, source=channel, batch=batch, skipped=parsed.n_skipped)
        created, duplicates = batch.n_created - before[0], batch.n_duplicates - before[1]
        times = [r.effective_at for r in readings]
        span = (min(times), max(times))
        if created:
            schedule_window_refresh(person, span)
    return {
        "received": parsed.n_entries,
        "created": created,
        "duplicates": duplicates,
        "skipped": parsed.n_skipped,
        "skipped_reasons": dict(parsed.skipped),
        "skipped_at": parsed.skipped_at,
        "newest": span[1] if span else None,
    }


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def as_entry(observation: Observation) -> dict:
    """A stored reading as a Nightscout sgv entry (24-hex `_id` like Nightscout's ObjectIds)."""
    moment = observation.effective_at.astimezone(dt_timezone.utc)
    return {
        "_id": f"{observation.pk:024x}",
        "type": "sgv",
        "sgv": round(observation.value_mg_dl),
        "date": _epoch_ms(moment),
        "dateString": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "device": observation.device or "glucast",
    }


def entries_for(person, *, count: int, bounds: dict[str, datetime]) -> list[dict]:
    """The person's sensor readings, newest first, at most `count`, within `bounds`
    ({"gt"|"gte"|"lt"|"lte": instant})."""
    lookups = {f"effective_at__{op}": moment for op, moment in bounds.items()}
    rows = (
        Observation.objects.for_person(person)
        .usable()
        .filter(kind=Observation.Kind.CGM, **lookups)
        .order_by("-effective_at")[:count]
    )
    return [as_entry(row) for row in rows]


def from_epoch_ms(value: str) -> datetime:
    """An instant from a find[date][...] value (epoch ms, or an ISO date-time); ValueError says why."""
    text = value.strip()
    if text.lstrip("-").isdigit() and len(text) <= 16:
        return datetime.fromtimestamp(int(text) / 1000.0, tz=dt_timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is neither epoch milliseconds nor an ISO date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_timezone.utc)
    return moment
