"""Pulling a person's own Nightscout site: incremental, bounded, with backoff and a status.

    save_source(person, *, url, access_token) -> NightscoutSource   checks the address first
    pull_source(source, *, now=None) -> dict                        one run for one site
    pull_due_sources(*, now=None) -> int                             the 5-minute schedule's work

Each run asks the site's /api/v1/entries.json for sgv entries newer than `cursor_at` (first run:
the last GLUCAST_NIGHTSCOUT_PULL_BACKFILL_DAYS). Nightscout answers newest first and at most
`count`, so a run walks pages backwards (find[date][$lt] = the oldest entry of the previous
page) until a page is not full; a catch-up bigger than the page budget continues next run from
where it stopped (`backfill_before`), and only a complete walk moves the cursor. Every page goes
through the same parsing, validation and idempotent storage as an upload, so overlaps cost
nothing but duplicates.

Failures (refused address, timeout, HTTP error, oversize, not Nightscout JSON, invalid entries)
are written on the source in words, and the next try waits INTERVAL * 2**(failures - 1) minutes,
up to GLUCAST_NIGHTSCOUT_PULL_MAX_BACKOFF_MIN.

After the entries, a run walks /api/v1/treatments.json the same way on `created_at` (ISO text,
as Nightscout compares it), with a cursor of its own (`treatments_cursor_at`): insulin, carbs and
temporary basals are stored as an upload's are (observations.nightscout.treatments), the rest
counted as skipped. A treatments failure is shown (`treatments_last_error`) but does not hold up
or back off the readings.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from observations.nightscout import outbound
from observations.nightscout.models import NightscoutSource
from observations.nightscout.secrets import sha1_hex
from observations.nightscout.services import PULL, from_epoch_ms, store_entries, store_treatments_document
from observations.validation import parse_timestamp
from observations.validation import ImportRejected, JSONRefused, load_json
from persons.erasure import ERASED, PersonErased, check_not_erased, erasure_mark

logger = logging.getLogger(__name__)


class PullFailed(Exception):
    """A run that stored nothing; the message is shown to the person."""


def normalize_url(url: str) -> str:
    url = url.strip()
    for suffix in ("/api/v1/", "/api/v1"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url.rstrip("/") + "/"


def save_source(person, *, url: str, access_token: str) -> NightscoutSource:
    """Register (or change) the person's Nightscout site; raises OutboundRefused for an address
    that may not be contacted. The first pull is due at once."""
    url = normalize_url(url)
    outbound.check_url(url)
    source, _ = NightscoutSource.objects.update_or_create(
        person=person,
        defaults={
            "url": url, "access_token": access_token.strip(), "enabled": True,
            "next_attempt_at": timezone.now(), "consecutive_failures": 0, "last_error": "",
            "last_error_at": None, "cursor_at": None, "backfill_before": None, "backfill_newest": None,
        },
    )
    return source


def remove_source(person) -> bool:
    deleted, _ = NightscoutSource.objects.for_person(person).delete()
    return bool(deleted)


def backoff_minutes(failures: int) -> int:
    interval = settings.GLUCAST_NIGHTSCOUT_PULL_INTERVAL_MIN
    return min(interval * 2 ** max(failures - 1, 0), settings.GLUCAST_NIGHTSCOUT_PULL_MAX_BACKOFF_MIN)


def _iso(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fetch_page(source: NightscoutSource, *, since: datetime, before: datetime | None, treatments: bool = False) -> list:
    if treatments:
        path, field, encode = "api/v1/treatments.json", "created_at", _iso
    else:
        path, field, encode = "api/v1/entries/sgv.json", "date", lambda moment: int(moment.timestamp() * 1000)
    params = {"count": settings.GLUCAST_NIGHTSCOUT_PULL_PAGE_SIZE, f"find[{field}][$gt]": encode(since)}
    if before is not None:
        params[f"find[{field}][$lt]"] = encode(before)
    headers = {}
    if source.access_token:
        # Nightscout takes an access token as ?token= and the API secret as its SHA-1 in
        # api-secret; people paste either, so both are sent.
        params["token"] = source.access_token
        headers["api-secret"] = sha1_hex(source.access_token)
    answer = outbound.get(f"{source.url}{path}", params=params, headers=headers)
    if answer.status in (401, 403):
        raise PullFailed(f"The site refused the access token (HTTP {answer.status}); check the token.")
    if answer.status == 404:
        raise PullFailed(f"The site has no /{path.rsplit('/', 1)[0]}/{path.rsplit('/', 1)[1].split('.')[0]} (HTTP 404); is this a Nightscout address?")
    if answer.status >= 500:
        raise PullFailed(f"The site had a server error (HTTP {answer.status}); will try again later.")
    if answer.status != 200:
        raise PullFailed(f"The site answered HTTP {answer.status}.")
    try:
        document = load_json(answer.body, allow_constants=True)  # the rules of an upload (api.read_json)
    except JSONRefused as exc:
        raise PullFailed(f"The site's answer holds text glucast cannot store ({exc}).") from None
    except ValueError:
        raise PullFailed("The site's answer is not JSON; is this a Nightscout address?") from None
    if not isinstance(document, list):
        raise PullFailed(f"The site's answer is not a list of Nightscout {'treatments' if treatments else 'entries'}.")
    return document


def _entry_ms(entry) -> int | None:
    if isinstance(entry, dict):
        value = entry.get("date", entry.get("mills"))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def _treatment_ms(treatment) -> int | None:
    """created_at (what the walk pages on) in epoch ms; None when it has none usable."""
    if isinstance(treatment, dict) and isinstance(treatment.get("created_at"), str):
        try:
            return int(parse_timestamp(treatment["created_at"], dt_timezone.utc).timestamp() * 1000)
        except ValueError:
            return None
    return None


def _save_source(source: NightscoutSource, mark) -> None:
    """Save the site's status unless the person's data was erased meanwhile (which deleted the
    site's row: a plain save would re-create it)."""
    with transaction.atomic():
        check_not_erased(source.person_id, mark)
        source.save(force_update=True)


def pull_source(source: NightscoutSource, *, now: datetime | None = None) -> dict:
    """One run: fetch new entries page by page, store them, update the status fields. When the
    person's data is deleted meanwhile, nothing more is written and the answer says `erased`."""
    mark = erasure_mark(source.person_id)  # before anything is written: persons/erasure.py
    try:
        return _pull(source, now=now, mark=mark)
    except PersonErased:
        logger.info("Nightscout pull of person %s stopped: their data was deleted meanwhile", source.person_id)
        return {"ok": False, "error": ERASED}


def _walk(source: NightscoutSource, *, now, mark, since, before, newest, treatments: bool = False):
    """Page backwards from the newest, store each page; returns (totals, complete, before, newest).
    Raises PullFailed / OutboundRefused; pages stored before that stay (they are idempotent)."""
    person = source.person
    what = "treatments" if treatments else "entries"
    stamp_of = _treatment_ms if treatments else _entry_ms
    totals = {"created": 0, "duplicates": 0, "skipped": 0, "pages": 0}
    for _page in range(settings.GLUCAST_NIGHTSCOUT_PULL_MAX_PAGES):
        items = _fetch_page(source, since=since, before=before, treatments=treatments)
        totals["pages"] += 1
        stamps = [ms for ms in map(stamp_of, items) if ms is not None]
        if items:
            try:
                with transaction.atomic():
                    check_not_erased(person.pk, mark)
                    if treatments:
                        summary = store_treatments_document(person, items, channel=PULL, now=now)
                    else:
                        summary = store_entries(person, items, channel=PULL, now=now)
            except ImportRejected as exc:
                first = exc.errors[0] if exc.errors else None
                one = "treatment" if treatments else "entry"
                where = f" ({one} {first.row}, {first.field}: {first.reason})" if first else ""
                raise PullFailed(f"The site sent {len({e.row for e in exc.errors})} invalid {what}{where}; nothing of that page was stored.") from None
            for key in ("created", "duplicates", "skipped"):
                totals[key] += summary[key]
        if stamps and newest is None:
            newest = from_epoch_ms(str(max(stamps)))
        if len(items) < settings.GLUCAST_NIGHTSCOUT_PULL_PAGE_SIZE or not stamps:
            return totals, True, before, newest
        oldest = from_epoch_ms(str(min(stamps)))
        if before is not None and oldest >= before:  # the site ignores find[...][$lt]
            raise PullFailed(f"The site ignored the date filter; cannot page through its {what}.")
        before = oldest
    return totals, False, before, newest


def _pull(source: NightscoutSource, *, now, mark) -> dict:
    now = now or timezone.now()
    source.last_attempt_at = now
    person = source.person
    backfill_start = now - timedelta(days=settings.GLUCAST_NIGHTSCOUT_PULL_BACKFILL_DAYS)
    try:
        totals, complete, before, newest = _walk(
            source, now=now, mark=mark, since=source.cursor_at or backfill_start,
            before=source.backfill_before, newest=source.backfill_newest,
        )
    except (PullFailed, outbound.OutboundRefused) as exc:
        source.consecutive_failures += 1
        source.last_error = str(exc)
        source.last_error_at = now
        source.next_attempt_at = now + timedelta(minutes=backoff_minutes(source.consecutive_failures))
        _save_source(source, mark)
        logger.info("Nightscout pull of person %s failed: %s", person.pk, exc)
        return {"ok": False, "error": str(exc)}
    if complete:
        if newest is not None:
            source.cursor_at = max(newest, source.cursor_at) if source.cursor_at else newest
        source.backfill_before = source.backfill_newest = None
    else:
        source.backfill_before, source.backfill_newest = before, newest
    treatment_totals = _pull_treatments(source, now=now, mark=mark, backfill_start=backfill_start)
    source.consecutive_failures = 0
    source.last_success_at = now
    source.last_n_created = totals["created"]
    source.next_attempt_at = now + timedelta(minutes=settings.GLUCAST_NIGHTSCOUT_PULL_INTERVAL_MIN)
    _save_source(source, mark)
    return {**totals, "ok": True, "complete": complete, "treatments": treatment_totals}


def _pull_treatments(source: NightscoutSource, *, now, mark, backfill_start) -> dict:
    """The treatments walk of a run (its cursor and status on the source, saved by the caller)."""
    try:
        totals, complete, before, newest = _walk(
            source, now=now, mark=mark, since=source.treatments_cursor_at or backfill_start,
            before=source.treatments_backfill_before, newest=source.treatments_backfill_newest, treatments=True,
        )
    except (PullFailed, outbound.OutboundRefused) as exc:
        source.treatments_last_error = str(exc)
        logger.info("Nightscout treatments pull of person %s failed: %s", source.person_id, exc)
        return {"ok": False, "error": str(exc)}
    if complete:
        if newest is not None:
            cursor = source.treatments_cursor_at
            source.treatments_cursor_at = max(newest, cursor) if cursor else newest
        source.treatments_backfill_before = source.treatments_backfill_newest = None
    else:
        source.treatments_backfill_before, source.treatments_backfill_newest = before, newest
    source.treatments_last_error = ""
    source.last_n_treatments = totals["created"]
    return {**totals, "ok": True, "complete": complete}


def pull_due_sources(*, now: datetime | None = None) -> int:
    """Enqueue one pull task per site that is due (its own worker task, so one slow site never
    delays the others); returns how many. The next attempt is moved ahead first so the next
    schedule run does not enqueue the same site again while its task waits."""
    now = now or timezone.now()
    due = list(NightscoutSource.objects.due(now).values_list("pk", flat=True))
    hold = now + timedelta(minutes=settings.GLUCAST_NIGHTSCOUT_PULL_INTERVAL_MIN)
    NightscoutSource.objects.filter(pk__in=due).update(next_attempt_at=hold)
    for pk in due:
        async_task(
            "observations.tasks.pull_nightscout_source_task", pk, group="nightscout-pull",
            hook="persons.erasure.forget_erased_result",  # no result row outlives an erasure
        )
    return len(due)
