"""The people-facing pages through Django's test client: own data only, bad input answered
with a clear 4xx, and the page services behind them."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from mlmodels.models import JobTrigger, TrainingJob
from observations.models import GlucoseWindow, ImportBatch, Observation
from predictions import wording
from predictions.models import PredictionFeedback, PredictionLog
from predictions.pages import feature_in_words, features_in_words, latest_reading
from tests.pages.conftest import load_readings

pytestmark = pytest.mark.django_db


def test_pages_need_login(client):
    for name in ("dashboard", "insights", "data", "data-delete-all"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and reverse("login") in response["Location"]


def test_dashboard_shows_reading_forecast_bands_and_disclaimer(logged_in, person):
    load_readings(person)
    response = logged_in.get(reverse("dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="band-95"' in html and 'class="band-80"' in html and 'class="forecast-line"' in html
    assert str(wording.DISCLAIMER) in html
    assert response.context["latest"]["arrow"]
    # No personal model yet: the population model answers, labelled as such.
    assert response.context["model"]["variant"] == "population"
    assert 'data-testid="population-note"' in html or str(wording.POPULATION_NOTE) in html
    # How many past episodes qualify depends on where the synthetic gaps fall (now-relative).
    assert 1 <= len(response.context["episodes"]["rows"]) <= 5
    assert GlucoseWindow.objects.for_person(person).exists()  # filled on the way
    assert PredictionLog.objects.for_person(person).count() == 1


def test_dashboard_labels_a_population_forecast(logged_in, person):
    load_readings(person, days=1)  # less than a personal model's first day: the prior answers
    response = logged_in.get(reverse("dashboard"))
    html = response.content.decode()
    assert response.context["model"]["variant"] == "population"
    assert "population model" in html  # the variant label beside the model version
    assert str(wording.POPULATION_NOTE) in html
    assert 'data-testid="no-model-text"' in html and "learned from many people" in html
    assert str(wording.DISCLAIMER) in html and 'class="band-80"' in html
    assert PredictionLog.objects.for_person(person).get().variant == "population"


def test_dashboard_labels_a_short_history_forecast(logged_in, person):
    now = timezone.now()
    load_readings(person, days=1, end=now - dt.timedelta(hours=2))
    load_readings(person, days=20 / 1440, seed=2, end=now - dt.timedelta(minutes=1))  # after a sensor change
    response = logged_in.get(reverse("dashboard"))
    html = response.content.decode()
    assert response.context["model"]["variant"] == "short_history"
    assert str(wording.SHORT_HISTORY_NOTE) in html and str(wording.DISCLAIMER) in html


def test_dashboard_24_hour_view(logged_in, person):
    load_readings(person)
    response = logged_in.get(reverse("dashboard"), {"view": "24h"})
    assert response.status_code == 200
    log = response.context["log"]
    assert log.points[-1]["horizon_min"] == 1440
    assert str(wording.LONG_HORIZON_NOTE) in response.content.decode()


def test_stale_readings_show_readings_and_a_message_not_a_forecast(logged_in, person):
    load_readings(person, days=2, age_min=3 * 60)
    response = logged_in.get(reverse("dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="forecast-error"' in html
    assert 'class="readings-line"' in html and 'class="band-80"' not in html
    assert response.context["latest"]["age_min"] >= 180


def test_dashboard_without_any_reading(logged_in, person):
    response = logged_in.get(reverse("dashboard"))
    assert response.status_code == 200
    assert response.context["latest"] is None and response.context["forecast_error"]


def test_dashboard_in_mmol(logged_in, person):
    person.preferred_unit = "mmol/L"
    person.save()
    load_readings(person)
    response = logged_in.get(reverse("dashboard"))
    latest = response.context["latest"]
    assert latest["unit"] == "mmol/L" and "." in latest["value"]
    assert "mmol/L" in response.context["chart_summary"]


def test_retrain_button_queues_one_job(logged_in, person, django_capture_on_commit_callbacks):
    load_readings(person, days=2)
    with django_capture_on_commit_callbacks(execute=False):
        logged_in.post(reverse("retrain"))
        logged_in.post(reverse("retrain"))
    jobs = TrainingJob.objects.for_person(person)
    assert jobs.count() == 1 and jobs.get().trigger == JobTrigger.PAGE
    response = logged_in.get(reverse("dashboard"))
    assert response.context["training"]["open"]
    assert 'data-testid="training-status"' in response.content.decode()


def test_retrain_needs_post(logged_in):
    assert logged_in.get(reverse("retrain")).status_code == 405


def test_feedback_on_own_forecast_and_404_on_anothers(logged_in, person, other_person, client):
    load_readings(person)
    load_readings(other_person, seed=2)
    logged_in.get(reverse("dashboard"))
    own = PredictionLog.objects.for_person(person).get()
    response = logged_in.post(reverse("forecast-feedback", args=[own.pk]), {"helpful": "no"})
    assert response.status_code == 302
    assert PredictionFeedback.objects.get(prediction=own).helpful is False
    logged_in.post(reverse("forecast-feedback", args=[own.pk]), {"helpful": "yes"})
    assert PredictionFeedback.objects.get(prediction=own).helpful is True  # replaced, not added

    other_person.owner.save()
    client.force_login(other_person.owner)
    client.get(reverse("dashboard"))
    theirs = PredictionLog.objects.for_person(other_person).get()
    client.force_login(person.owner)
    response = client.post(reverse("forecast-feedback", args=[theirs.pk]), {"helpful": "yes"})
    assert response.status_code == 404
    assert not PredictionFeedback.objects.filter(prediction=theirs).exists()


def test_feedback_with_bad_value_saves_nothing(logged_in, person):
    load_readings(person)
    logged_in.get(reverse("dashboard"))
    log = PredictionLog.objects.for_person(person).get()
    logged_in.post(reverse("forecast-feedback", args=[log.pk]), {"helpful": "maybe"})
    assert not PredictionFeedback.objects.exists()


def test_insights_default_period_and_contents(logged_in, person):
    load_readings(person, days=20)
    before = timezone.now().astimezone(person.tz).date()
    response = logged_in.get(reverse("insights"))
    assert response.status_code == 200
    keys = [row["key"] for row in response.context["metrics"]]
    assert "time_in_range_percent" in keys and "gmi_percent" in keys
    html = response.content.decode()
    assert 'class="agp-outer"' in html and 'class="agp-inner"' in html and 'class="agp-median"' in html
    assert 'id="agp-caption"' in html
    shares = sum(part["share"] for part in response.context["range_bar"])
    assert shares == pytest.approx(100, abs=0.05)
    # The person's today when the page was made: a request across local midnight (23:59:59 in
    # Berlin) ends the period on the day before the one this test sees afterwards.
    today = timezone.now().astimezone(person.tz).date()
    assert response.context["period_end"] in {before, today}


def test_insights_chosen_period(logged_in, person):
    load_readings(person, days=20)
    today = timezone.now().astimezone(person.tz).date()
    response = logged_in.get(reverse("insights"), {"start": (today - dt.timedelta(days=6)).isoformat(), "end": today.isoformat()})
    assert response.status_code == 200
    assert response.context["n_readings"] < 7.5 * 288


@pytest.mark.parametrize(
    "params",
    [{"start": "2026-02-10", "end": "2026-02-01"}, {"start": "not a date"}, {"start": "2020-01-01", "end": "2026-01-01"},
     {"end": "0001-01-01"}],  # the default start, counted back from it, was an OverflowError (a 500)
)
def test_insights_bad_period_is_a_400_naming_the_problem(logged_in, params):
    response = logged_in.get(reverse("insights"), params)
    assert response.status_code == 400
    assert response.context["form"].errors


def test_upload_shows_summary_and_is_idempotent(logged_in, person, fixtures_dir):
    path = fixtures_dir / "dexcom_clarity_g6_mgdl.csv"
    with path.open("rb") as handle:
        response = logged_in.post(reverse("data-upload"), {"file": handle, "format": "auto"})
    assert response.status_code == 302
    batch = ImportBatch.objects.for_person(person).get()
    assert batch.n_created > 0
    page = logged_in.get(response["Location"])
    assert 'data-testid="upload-result"' in page.content.decode()
    with path.open("rb") as handle:
        response = logged_in.post(
            reverse("data-upload"), {"file": handle}, HTTP_X_REQUESTED_WITH="XMLHttpRequest"
        )
    body = response.json()
    assert body["ok"] and body["created"] == 0 and body["duplicates"] == batch.n_created


def test_upload_of_a_bad_file_lists_the_rows_and_saves_nothing(logged_in, person, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,value,unit\n2025-02-01T08:00:00,110,mg/dL\nyesterday,abc,mg/dL\n")
    with bad.open("rb") as handle:
        response = logged_in.post(reverse("data-upload"), {"file": handle})
    assert response.status_code == 400
    assert 'data-testid="upload-errors"' in response.content.decode()
    assert response.context["rejected"]["errors"]
    assert not Observation.objects.for_person(person).exists()
    with bad.open("rb") as handle:
        response = logged_in.post(reverse("data-upload"), {"file": handle}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 400 and response.json()["errors"][0]["row"] == 3


def test_upload_without_a_file_is_a_400(logged_in):
    response = logged_in.post(reverse("data-upload"), {})
    assert response.status_code == 400


def test_delete_import_removes_its_readings_and_windows(logged_in, person):
    first = load_readings(person, days=3, seed=1)
    second = load_readings(person, days=3, seed=1, end=timezone.now() - dt.timedelta(days=5))
    from observations.episodes import refresh_windows

    refresh_windows(person)
    before = GlucoseWindow.objects.for_person(person).count()
    response = logged_in.post(reverse("data-import-delete", args=[second.pk]))
    assert response.status_code == 302
    assert not ImportBatch.objects.filter(pk=second.pk).exists()
    assert Observation.objects.for_person(person).count() == first.n_created
    remaining = GlucoseWindow.objects.for_person(person)
    assert 0 < remaining.count() < before
    assert not remaining.filter(end_at__lt=timezone.now() - dt.timedelta(days=4)).exists()


def test_another_persons_import_is_404(logged_in, other_person):
    theirs = load_readings(other_person, days=1)
    response = logged_in.post(reverse("data-import-delete", args=[theirs.pk]))
    assert response.status_code == 404
    assert ImportBatch.objects.filter(pk=theirs.pk).exists()


def test_delete_all_needs_confirmation(logged_in, person):
    load_readings(person, days=1)
    assert logged_in.get(reverse("data-delete-all")).status_code == 200
    response = logged_in.post(reverse("data-delete-all"), {})
    assert response.status_code == 400
    assert Observation.objects.for_person(person).exists()


def test_latest_reading_trend_arrow():
    import pandas as pd

    now = pd.Timestamp("2026-01-01 12:00", tz="UTC")
    times = pd.date_range(end=now, periods=4, freq="5min")
    rising = pd.DataFrame({"time": times, "glucose_mg_dl": [100.0, 110, 125, 140]})
    latest = latest_reading(rising, now=now + pd.Timedelta(minutes=3), unit="mg/dL")
    assert latest["arrow"] == "↑" and latest["age_min"] == 3 and latest["value"] == "140"
    steady = pd.DataFrame({"time": times, "glucose_mg_dl": [100.0, 101, 100, 102]})
    assert latest_reading(steady, now=now, unit="mg/dL")["arrow"] == "→"
    falling = pd.DataFrame({"time": times, "glucose_mg_dl": [200.0, 180, 160, 140]})
    assert latest_reading(falling, now=now, unit="mg/dL")["arrow"] == "⇊"


def test_features_in_plain_words():
    assert feature_in_words("lag_15min") == "your glucose 15 minutes ago"
    assert feature_in_words("rate_30min") == "how fast glucose changed over the last 30 minutes"
    rows = features_in_words(
        [{"feature": "time_of_day_sin", "contribution": 4.0}, {"feature": "time_of_day_cos", "contribution": 3.0},
         {"feature": "glucose_now", "contribution": -2.0}],
        "mg/dL",
    )
    assert rows[0]["words"] == "the time of day" and rows[0]["effect"] == "raised the forecast by 7 mg/dL"
    assert rows[1]["effect"] == "lowered the forecast by 2 mg/dL"


def test_insights_in_mmol(logged_in, person):
    person.preferred_unit = "mmol/L"
    person.save()
    load_readings(person, days=14)
    response = logged_in.get(reverse("insights"))
    rows = {row["key"]: row["value"] for row in response.context["metrics"]}
    assert rows["mean_mg_dl"].endswith("mmol/L") and "." in rows["mean_mg_dl"]
    assert response.context["target_low"] == "3.9 mmol/L"


def test_insights_in_german_use_decimal_commas(logged_in, person):
    person.preferred_unit = "mmol/L"
    person.save()
    load_readings(person, days=14)
    response = logged_in.get(reverse("insights"), HTTP_ACCEPT_LANGUAGE="de")
    html = response.content.decode()
    assert "Zeit im Zielbereich (3,9 mmol/L–10,0 mmol/L)" in html
    assert 'class="agp-median" d="M' in html and "," in html  # SVG coordinates stay unlocalized
    median_path = html.split('class="agp-median" d="')[1].split('"')[0]
    assert all(token.count(",") == 1 for token in median_path.split())


def test_no_forecast_messages_speak_to_the_person(logged_in, person):
    response = logged_in.get(reverse("dashboard"))
    assert "Upload a CGM export on the Data page" in response.context["forecast_error"]
    load_readings(person, days=1, age_min=90)
    response = logged_in.get(reverse("dashboard"))
    assert response.context["forecast_error"].startswith("Your latest reading is from ")
    assert "history" not in response.context["forecast_error"]
