"""The data page's "Live readings" part: the upload secret and AndroidAPS' API v3 access token
(made, shown once, rotated, removed) and the person's own Nightscout site (connected with an address check, status in words)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from observations.nightscout.models import NightscoutAccessToken, NightscoutSource, NightscoutUploadSecret
from tests.nightscout.conftest import SITE_TOKEN


@pytest.fixture
def logged_in(person):
    person.owner.save()
    client = Client()
    client.force_login(person.owner)
    return client


def new_secret(response) -> str:
    match = re.search(r'<code class="secret">([^<]+)</code>', response.content.decode())
    assert match, "the new secret is not on the page"
    return match.group(1)


def test_create_see_once_rotate_and_remove_the_upload_secret(logged_in, person):
    page = logged_in.get("/data/").content.decode()
    assert "No upload secret yet" in page and "http://testserver/ns/" in page
    created = logged_in.post("/data/nightscout/secret/")
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    secret = new_secret(created)
    assert f"http://{secret}@testserver/ns/api/v1/" in created.content.decode()  # xDrip+'s Base URL
    later = logged_in.get("/data/").content.decode()
    assert secret not in later and f"{secret[:4]}…" in later  # shown once, then only its start

    uploader = Client(enforce_csrf_checks=True)
    entry = json.dumps({"type": "sgv", "sgv": 120, "date": int(timezone.now().timestamp() * 1000) - 60_000})
    sha1 = hashlib.sha1(secret.encode()).hexdigest()
    assert uploader.post("/ns/api/v1/entries", entry, content_type="application/json", HTTP_API_SECRET=sha1).status_code == 200

    rotated = new_secret(logged_in.post("/data/nightscout/secret/"))
    assert rotated != secret
    assert uploader.post("/ns/api/v1/entries", entry, content_type="application/json", HTTP_API_SECRET=sha1).status_code == 401
    logged_in.post("/data/nightscout/secret/remove/")
    assert not NightscoutUploadSecret.objects.filter(person=person).exists()


def test_secret_pages_need_login_and_post(db):
    client = Client()
    assert client.post("/data/nightscout/secret/").status_code == 302
    assert NightscoutUploadSecret.objects.count() == 0


def test_connect_a_site_refused_address_and_status(logged_in, person, nightscout_site, settings):
    base, _ = nightscout_site
    refused = logged_in.post("/data/nightscout/site/", {"url": f"{base}/site/", "access_token": SITE_TOKEN})
    assert refused.status_code == 400 and "loopback address" in refused.content.decode()
    assert not NightscoutSource.objects.exists()

    settings.GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS = ["127.0.0.0/8"]
    ok = logged_in.post("/data/nightscout/site/", {"url": f"{base}/error", "access_token": SITE_TOKEN})
    assert ok.status_code == 302
    source = NightscoutSource.objects.get(person=person)
    assert source.url == f"{base}/error/"
    from observations.nightscout.pull import pull_source

    pull_source(source)
    page = logged_in.get("/data/").content.decode()
    assert "server error (HTTP 500)" in page and "Next try" in page and SITE_TOKEN not in page
    logged_in.post("/data/nightscout/site/remove/")
    assert not NightscoutSource.objects.exists()


def test_the_live_readings_part_in_german(logged_in):
    page = logged_in.get("/data/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Live-Messwerte aus Ihrer CGM-App" in page and "Upload-Secret erstellen" in page


def test_create_see_once_rotate_and_remove_the_androidaps_access_token(logged_in, person):
    page = logged_in.get("/data/").content.decode()
    assert "No access token yet" in page and "<code data-testid=\"ns-aaps-url\">http://testserver/ns</code>" in page
    assert logged_in.get("/data/nightscout/token/").status_code == 405
    created = logged_in.post("/data/nightscout/token/")
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    token = re.search(r'data-testid="ns-new-token">.*?<code class="secret">([^<]+)</code>', created.content.decode(), re.S).group(1)
    assert re.fullmatch(r"glucast-[0-9a-f]{32}", token)
    later = logged_in.get("/data/").content.decode()
    assert token not in later and f"{token[:12]}…" in later and "Not used yet" in later

    app = Client(enforce_csrf_checks=True)
    assert app.get(f"/api/v2/authorization/request/{token}").status_code == 200
    assert "Last used" in logged_in.get("/data/").content.decode()
    rotated = re.search(r'data-testid="ns-new-token">.*?<code class="secret">([^<]+)</code>',
                        logged_in.post("/data/nightscout/token/").content.decode(), re.S).group(1)
    assert rotated != token
    assert app.get(f"/api/v2/authorization/request/{token}").status_code == 401
    logged_in.post("/data/nightscout/token/remove/")
    assert not NightscoutAccessToken.objects.filter(person=person).exists()
    assert app.get(f"/api/v2/authorization/request/{rotated}").status_code == 401
    assert Client().post("/data/nightscout/token/").status_code == 302  # login first
