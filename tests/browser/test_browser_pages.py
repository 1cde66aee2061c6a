"""The pages in a real browser: log in, dashboard chart with its bands and the disclaimer,
upload, German, phone width, and another person's objects answering 404."""

import re

import pytest

from observations.episodes import refresh_windows
from observations.models import ImportBatch
from predictions import wording
from predictions.models import PredictionFeedback
from tests.factories import PersonFactory
from tests.pages.conftest import load_readings, train_model

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


@pytest.fixture
def demo_person(db):
    person = PersonFactory(display_name="Alex")
    person.owner.set_password(PASSWORD)
    person.owner.save()
    load_readings(person, days=14, seed=4)
    refresh_windows(person)
    model = train_model(person)
    assert model.is_active
    return person


def log_in(page, live_server, person):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", person.owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_dashboard_draws_forecast_with_bands_and_disclaimer(page, live_server, demo_person, screenshot):
    log_in(page, live_server, demo_person)
    chart = page.locator(".chart-wide svg.glucose-chart")
    for part in ("band-95", "band-80", "forecast-line", "readings-line"):
        box = chart.locator(f"path.{part}").bounding_box()
        assert box and box["width"] > 50 and box["height"] > 1, part
    assert page.get_by_test_id("disclaimer").is_visible()
    assert page.get_by_test_id("disclaimer").inner_text() == str(wording.DISCLAIMER)
    assert page.get_by_test_id("model-version").inner_text() != "baseline"
    assert re.fullmatch(r"\d+", page.get_by_test_id("latest-value").locator(".value").inner_text())
    assert page.locator("#chart-caption").inner_text().startswith("Glucose over the last 6 hours")
    assert page.locator(".episodes li").count() >= 1
    screenshot(page, "dashboard-desktop")

    page.get_by_role("link", name="24 hours").click()
    page.wait_for_url("**/?view=24h")
    assert page.locator(".chart-wide path.band-95").bounding_box()["width"] > 300
    screenshot(page, "dashboard-24h-desktop")

    page.locator(".feedback button[value=yes]").click()
    assert page.locator(".messages").inner_text().strip() == "Thank you for your feedback."


def test_phone_width(page, live_server, demo_person, screenshot):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, demo_person)
    assert page.locator(".chart-narrow svg").is_visible()
    assert not page.locator(".chart-wide svg").is_visible()
    assert page.get_by_test_id("disclaimer").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "dashboard-phone")
    screenshot(page, "dashboard-phone-top", full_page=False)
    page.locator(".forecast").scroll_into_view_if_needed()
    screenshot(page, "dashboard-phone-chart", full_page=False)
    for path, name in (("/insights/", "insights-phone"), ("/data/", "data-phone")):
        page.goto(f"{live_server.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        screenshot(page, name)
        screenshot(page, f"{name}-top", full_page=False)


def test_insights_page(page, live_server, demo_person, screenshot):
    log_in(page, live_server, demo_person)
    page.get_by_role("link", name="Insights").click()
    page.wait_for_url("**/insights/")
    agp = page.locator(".chart-wide svg.agp-chart")
    for part in ("agp-outer", "agp-inner", "agp-median"):
        assert agp.locator(f"path.{part}").bounding_box()["width"] > 300, part
    assert "Median glucose by time of day" in page.locator("#agp-caption").inner_text()
    assert page.locator("tr[data-metric=gmi_percent] td").inner_text().endswith("%")
    screenshot(page, "insights-desktop")


def test_upload_a_file(page, live_server, demo_person, fixtures_dir, screenshot):
    log_in(page, live_server, demo_person)
    page.goto(f"{live_server.url}/data/")
    assert page.locator("progress").count() == 1  # the progress bar the upload drives
    page.set_input_files("#id_file", str(fixtures_dir / "libreview_eu_mmol.csv"))
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(re.compile(r".*/data/\?imported=\d+$"))
    result = page.get_by_test_id("upload-result")
    assert "Import finished." in result.inner_text()
    batch = ImportBatch.objects.for_person(demo_person).order_by("-created_at").first()
    assert batch.filename == "libreview_eu_mmol.csv" and batch.n_created > 0
    assert f"{batch.n_created} new readings" in result.inner_text()
    assert page.locator("table.imports tbody tr").count() == 2
    screenshot(page, "data-after-upload")

    # a file with a bad row: the errors are listed in place, nothing is stored
    bad = fixtures_dir.parent / "fixtures" / "plain_readings.csv"
    page.set_input_files("#id_file", {"name": "bad.csv", "mimeType": "text/csv",
                                      "buffer": bad.read_bytes() + b"tomorrow,abc,mg/dL\n"})
    page.get_by_role("button", name="Upload", exact=True).click()
    errors = page.get_by_test_id("upload-errors")
    errors.wait_for()
    assert "Nothing was imported." in errors.inner_text()
    assert errors.locator("tbody tr").count() >= 1
    assert ImportBatch.objects.for_person(demo_person).count() == 2
    screenshot(page, "data-upload-errors")


def test_switch_to_german(page, live_server, demo_person, screenshot):
    log_in(page, live_server, demo_person)
    page.select_option("#lang-select", "de")
    page.wait_for_load_state("load")
    page.get_by_role("link", name="Übersicht").wait_for()
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.get_by_test_id("disclaimer").inner_text().startswith("Diese Prognose dient nur zur Information")
    assert page.get_by_role("heading", name="Worauf diese Prognose beruht").is_visible()
    assert page.locator("#chart-caption").inner_text().startswith("Glukose der letzten 6 Stunden")
    screenshot(page, "dashboard-german")
    page.get_by_role("link", name="Auswertung").click()
    page.get_by_role("heading", name="Ambulantes Glukoseprofil (AGP)").wait_for()
    screenshot(page, "insights-german")


def test_another_persons_objects_answer_404(page, live_server, demo_person):
    from predictions.services import forecast_for_person

    other = PersonFactory()
    theirs = load_readings(other, days=1, seed=9)
    their_forecast = forecast_for_person(other)
    log_in(page, live_server, demo_person)
    post = """async (url) => {
        const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
        const body = new URLSearchParams({helpful: 'yes'});
        const response = await fetch(url, {method: 'POST', body, headers: {'X-CSRFToken': token}});
        return response.status;
    }"""
    assert page.evaluate(post, f"/data/imports/{theirs.pk}/delete/") == 404
    assert ImportBatch.objects.filter(pk=theirs.pk).exists()
    assert page.evaluate(post, f"/forecasts/{their_forecast.pk}/feedback/") == 404
    assert not PredictionFeedback.objects.filter(prediction=their_forecast).exists()


def test_delete_all_my_data_with_confirmation(page, live_server, demo_person, screenshot):
    from observations.models import GlucoseWindow, Observation
    from mlmodels.models import MLModel

    log_in(page, live_server, demo_person)
    page.goto(f"{live_server.url}/data/")
    page.get_by_role("link", name="Delete all my data…").click()
    page.wait_for_url("**/data/delete-all/")
    screenshot(page, "delete-all-confirm")
    page.get_by_role("button", name="Delete everything").click()  # unticked: the browser refuses
    assert page.url.endswith("/data/delete-all/")
    assert Observation.objects.for_person(demo_person).exists()
    page.check("#id_confirm")
    page.get_by_role("button", name="Delete everything").click()
    page.wait_for_url("**/data/")
    assert "All your data was deleted" in page.locator(".messages").inner_text()
    assert not Observation.objects.for_person(demo_person).exists()
    assert not MLModel.objects.for_person(demo_person).exists()
    assert not GlucoseWindow.objects.for_person(demo_person).exists()
    page.get_by_role("link", name="Dashboard").click()
    assert "No readings yet." in page.locator(".latest").inner_text()
    screenshot(page, "dashboard-empty")


def test_live_readings_secret_is_shown_once_and_an_app_can_send(page, live_server, screenshot):
    """Create the upload secret in the browser, send a reading with it as xDrip+ would, and see
    the page say it was used; the secret itself is not on the page again."""
    import hashlib
    import json
    import urllib.request
    from datetime import datetime, timezone

    person = PersonFactory(display_name="Sam")
    person.owner.set_password(PASSWORD)
    person.owner.save()
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, person)
    page.goto(f"{live_server.url}/data/")
    page.get_by_role("button", name="Create an upload secret").click()
    secret = page.locator("code.secret").inner_text().strip()
    assert len(secret) >= 32
    assert f"{secret}@" in page.get_by_test_id("ns-xdrip-url").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "data-live-secret-phone")

    entry = {"type": "sgv", "sgv": 131, "date": int(datetime.now(timezone.utc).timestamp() * 1000) - 60_000,
             "device": "xDrip-DexcomG6", "direction": "Flat"}
    request = urllib.request.Request(
        f"{live_server.url}/ns/api/v1/entries", data=json.dumps([entry]).encode(), method="POST",
        headers={"Content-Type": "application/json", "api-secret": hashlib.sha1(secret.encode()).hexdigest()},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["X-Glucast-Created"] == "1"
        assert json.loads(response.read()) == [{"type": "sgv", "date": entry["date"], "sgv": 131, "status": "stored"}]

    page.goto(f"{live_server.url}/data/")
    status = page.get_by_test_id("ns-secret-status").inner_text()
    assert "Last used" in status and secret not in page.content()
    assert "live upload" in page.locator("table.imports").inner_text()
