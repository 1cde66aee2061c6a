"""The pull connector against a real HTTP server on loopback serving recorded Nightscout answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from observations.models import ImportBatch, Observation
from observations.nightscout import outbound
from observations.nightscout.models import NightscoutSource
from observations.nightscout.pull import backoff_minutes, pull_due_sources, pull_source, save_source
from observations.tasks import pull_nightscout_source_task
from tests.nightscout.conftest import SITE_TOKEN


def connect(person, url, token=SITE_TOKEN):
    return save_source(person, url=url, access_token=token)


def test_first_pull_stores_the_sites_entries_then_asks_only_for_newer(person, nightscout_site, allow_loopback):
    base, site = nightscout_site
    source = connect(person, f"{base}/site/")
    result = pull_source(source)
    assert result["ok"] and result["created"] == 12, result
    assert Observation.objects.for_person(person).count() == 12
    newest = max(e["date"] for e in site.entries)
    source.refresh_from_db()
    assert int(source.cursor_at.timestamp() * 1000) == newest
    assert source.last_success_at and source.consecutive_failures == 0 and source.last_error == ""
    assert ImportBatch.objects.for_person(person).get().source == "nightscout-pull"
    # the site gets one new reading; the next pull asks only after the cursor
    site.entries.append(dict(site.entries[0], date=newest + 300_000, sgv=140, _id="683c5e99a1b2c3d4e5f69999"))
    site.requests.clear()
    again = pull_source(source)
    assert again["ok"] and (again["created"], again["duplicates"]) == (1, 0)
    assert f"find%5Bdate%5D%5B%24gt%5D={newest}" in site.requests[0]
    assert Observation.objects.for_person(person).count() == 13


def test_a_catch_up_larger_than_the_page_budget_continues_next_run(person, nightscout_site, allow_loopback):
    allow_loopback.GLUCAST_NIGHTSCOUT_PULL_PAGE_SIZE = 3
    allow_loopback.GLUCAST_NIGHTSCOUT_PULL_MAX_PAGES = 2
    base, site = nightscout_site
    source = connect(person, f"{base}/site")
    first = pull_source(source)
    assert first["ok"] and not first["complete"] and first["created"] == 6
    source.refresh_from_db()
    assert source.cursor_at is None and source.backfill_before is not None
    second = pull_source(source)
    assert second["ok"] and second["created"] == 6 and second["complete"] is False  # 12 = 4 full pages
    third = pull_source(source)
    assert third["ok"] and third["complete"] and third["created"] == 0
    source.refresh_from_db()
    assert int(source.cursor_at.timestamp() * 1000) == max(e["date"] for e in site.entries)
    assert Observation.objects.for_person(person).count() == 12


def test_a_wrong_token_is_reported_in_words_with_backoff(person, nightscout_site, allow_loopback):
    base, _ = nightscout_site
    source = connect(person, f"{base}/site/", token="wrong")
    before = timezone.now()
    result = pull_source(source)
    assert not result["ok"]
    source.refresh_from_db()
    assert "refused the access token" in source.last_error and source.consecutive_failures == 1
    assert source.next_attempt_at >= before + timedelta(minutes=5)


def test_a_server_error_backs_off_exponentially(person, nightscout_site, allow_loopback):
    base, _ = nightscout_site
    source = connect(person, f"{base}/error/")
    gaps = []
    for _ in range(4):
        start = timezone.now()
        pull_source(source, now=start)
        gaps.append(round((source.next_attempt_at - start).total_seconds() / 60))
    assert gaps == [5, 10, 20, 40]
    assert "server error (HTTP 500)" in source.last_error
    assert backoff_minutes(30) == allow_loopback.GLUCAST_NIGHTSCOUT_PULL_MAX_BACKOFF_MIN
    assert Observation.objects.for_person(person).count() == 0


def test_a_slow_server_times_out(person, nightscout_site, allow_loopback):
    base, _ = nightscout_site
    source = connect(person, f"{base}/slow/")
    started = timezone.now()
    assert not pull_source(source)["ok"]
    assert (timezone.now() - started).total_seconds() < 2.9
    assert "did not answer within" in source.last_error


def test_a_slow_drip_is_cut_at_the_deadline(nightscout_site, allow_loopback):
    base, _ = nightscout_site
    started = timezone.now()
    with pytest.raises(outbound.OutboundRefused, match="did not answer within"):
        outbound.get(f"{base}/drip/")
    assert (timezone.now() - started).total_seconds() < 4


@pytest.mark.parametrize("path", ["huge", "huge-undeclared"])
def test_an_oversized_answer_is_refused(person, nightscout_site, allow_loopback, path):
    allow_loopback.GLUCAST_NIGHTSCOUT_PULL_MAX_BYTES = 50_000
    base, _ = nightscout_site
    source = connect(person, f"{base}/{path}/")
    assert not pull_source(source)["ok"]
    assert "larger than" in source.last_error


def test_a_redirect_to_a_private_address_is_refused(person, nightscout_site, allow_loopback):
    base, site = nightscout_site
    source = connect(person, f"{base}/redirect/")
    for target in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/api/v1/entries/sgv.json",
                   "http://[::ffff:192.168.1.1]/", "ftp://example.org/"):
        site.redirect_to = target
        assert not pull_source(source)["ok"]
        assert "Refused" in source.last_error or "Only http" in source.last_error, (target, source.last_error)


def test_a_redirect_within_allowed_addresses_is_followed(person, nightscout_site, allow_loopback):
    base, _ = nightscout_site
    source = connect(person, f"{base}/redirect-site/")
    assert pull_source(source)["created"] == 12


def test_an_answer_that_is_not_nightscout_is_a_clear_error(person, nightscout_site, allow_loopback):
    base, _ = nightscout_site
    for path, words in (("html", "not JSON"), ("nothing", "HTTP 404")):
        source = connect(person, f"{base}/{path}/")
        assert not pull_source(source)["ok"]
        assert words in source.last_error


def test_by_default_loopback_and_private_addresses_are_refused(person, nightscout_site, settings):
    assert settings.GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS == []
    base, site = nightscout_site
    with pytest.raises(outbound.OutboundRefused, match="loopback"):
        connect(person, f"{base}/site/")
    for url in ("http://localhost:1/", "http://10.1.2.3/", "http://[::1]/", "http://169.254.169.254/",
                "http://0.0.0.0/", "http://100.64.0.1/", "http://224.0.0.1/", "http://[fe80::1]/",
                "http://[::ffff:127.0.0.1]/", "file:///etc/passwd", "gopher://example.org/",
                "http://user:pw@example.org/"):
        with pytest.raises(outbound.OutboundRefused):
            outbound.check_url(url)
    # a source saved while allowed and refused later is not contacted
    NightscoutSource.objects.create(person=person, url=f"{base}/site/", access_token=SITE_TOKEN,
                                    next_attempt_at=timezone.now())
    assert not pull_source(NightscoutSource.objects.get(person=person))["ok"]
    assert site.requests == []


def test_public_addresses_pass_the_check():
    assert outbound.address_refusal("93.184.215.14") is None
    assert outbound.address_refusal("2606:2800:21f:cb07:6820:80da:af6b:8b2c") is None
    assert outbound.address_refusal("192.168.0.10") == "a private address"


def test_the_schedule_enqueues_due_sites_once_and_the_task_pulls(person, other_person, nightscout_site, allow_loopback):
    from django_q.models import OrmQ

    base, _ = nightscout_site
    connect(person, f"{base}/site/")
    later = connect(other_person, f"{base}/site/")
    later.next_attempt_at = timezone.now() + timedelta(minutes=3)
    later.save()
    assert pull_due_sources() == 1
    assert pull_due_sources() == 0  # held until its task has run
    assert OrmQ.objects.count() == 1
    source = NightscoutSource.objects.get(person=person)
    assert pull_nightscout_source_task(source.pk)["created"] == 12
    assert Observation.objects.for_person(other_person).count() == 0


@pytest.mark.django_db
def test_the_schedule_is_ensured_with_the_others():
    from django_q.models import Schedule

    from predictions.schedules import ensure_schedules

    ensure_schedules()
    ensure_schedules()
    rows = Schedule.objects.filter(name="glucast: pull Nightscout sites")
    assert rows.count() == 1 and rows[0].minutes == 5 and rows[0].func == "observations.tasks.pull_nightscout_sites_task"


def test_treatments_are_pulled_incrementally_on_created_at(person, nightscout_site, allow_loopback):
    from observations.models import Treatment

    base, site = nightscout_site
    source = connect(person, f"{base}/site/")
    result = pull_source(source)
    assert result["ok"] and result["treatments"]["ok"], result
    # bolus, SMB, carbs, two temp basals; the target, note and site change are skipped
    assert (result["treatments"]["created"], result["treatments"]["skipped"]) == (5, 3)
    kinds = sorted(Treatment.objects.for_person(person).values_list("kind", flat=True))
    assert kinds == ["bolus", "bolus", "carbs", "temp_basal", "temp_basal"]
    temp = Treatment.objects.get(source_identifier="683c6002a1b2c3d4e5f61002/temp_basal")
    assert temp.amount == 1.35 and temp.duration == timedelta(minutes=30)
    source.refresh_from_db()
    newest = max(site.treatments, key=lambda t: t["date"])
    assert int(source.treatments_cursor_at.timestamp() * 1000) == newest["date"]
    assert source.last_n_treatments == 5 and source.treatments_last_error == ""
    treatment_requests = [r for r in site.requests if "treatments.json" in r]
    assert "find%5Bcreated_at%5D%5B%24gt%5D=" in treatment_requests[0]
    # a new carb entry on the site: the next run asks after the cursor and stores only it
    later = datetime.fromisoformat(newest["created_at"]) + timedelta(seconds=30)
    site.treatments.append({"_id": "683c6099a1b2c3d4e5f61099", "eventType": "Carb Correction", "carbs": 12,
                            "created_at": later.isoformat(timespec="milliseconds"), "isValid": True})
    cursor = source.treatments_cursor_at.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    site.requests.clear()
    again = pull_source(source)
    assert (again["treatments"]["created"], again["treatments"]["duplicates"]) == (1, 0)
    asked = [r for r in site.requests if "treatments.json" in r][0]
    assert urlencode({"find[created_at][$gt]": cursor}) in asked
    assert Treatment.objects.for_person(person).count() == 6


def test_a_treatments_failure_is_shown_but_readings_still_arrive(person, nightscout_site, allow_loopback):
    base, site = nightscout_site
    site.treatments.append({"_id": "bad", "eventType": "Meal Bolus", "insulin": 900,
                            "created_at": site.treatments[0]["created_at"]})
    source = connect(person, f"{base}/site/")
    result = pull_source(source)
    assert result["ok"] and result["created"] == 12 and not result["treatments"]["ok"]
    source.refresh_from_db()
    assert "invalid treatments (treatment" in source.treatments_last_error and "insulin" in source.treatments_last_error
    assert source.consecutive_failures == 0 and source.treatments_cursor_at is None
