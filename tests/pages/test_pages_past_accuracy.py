"""The dashboard's "How past forecasts did": the person's own forecasts of the last 24 hours
scored against the readings that followed (realized MAE at 30 and 60 minutes, share inside the
80% range), from the matched outcomes; the disclaimer stays."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from predictions import wording
from predictions.models import PredictionLog, Source
from predictions.outcomes import fill_outcomes, recent_accuracy
from predictions.services import forecast_for_person
from tests.pages.conftest import load_readings

pytestmark = pytest.mark.django_db


def scored_forecast(person):
    """A live forecast, moved back three hours as if made then (outcome matching scores live
    forecasts only), and matched with the readings at its times."""
    log = forecast_for_person(person, horizons=[30, 60], source=Source.BATCH)
    back = dt.timedelta(hours=3)
    for point in log.points:
        point["time"] = (dt.datetime.fromisoformat(point["time"].replace("Z", "+00:00")) - back).isoformat()
    PredictionLog.objects.filter(pk=log.pk).update(
        issued_at=log.issued_at - back, as_of=log.as_of - back, points=log.points,
        outcomes_next_at=log.outcomes_next_at - back,
    )
    fill_outcomes(now=timezone.now())
    log.refresh_from_db()
    assert all(p.get("actual_mg_dl") is not None for p in log.points), log.points
    return log


def test_the_dashboard_shows_how_past_forecasts_did(logged_in, person, other_person):
    load_readings(person)
    log = scored_forecast(person)
    load_readings(other_person, seed=2)
    scored_forecast(other_person)  # someone else's outcomes never count for this person

    figures = recent_accuracy(person, since=timezone.now() - dt.timedelta(hours=24))
    assert set(figures) == {30, 60} and all(f["n_matched"] == 1 for f in figures.values())
    point30 = next(p for p in log.points if p["horizon_min"] == 30)
    assert figures[30]["mae_mg_dl"] == pytest.approx(abs(point30["value_mg_dl"] - point30["actual_mg_dl"]))
    inside = point30["lower_80_mg_dl"] <= point30["actual_mg_dl"] <= point30["upper_80_mg_dl"]
    assert figures[30]["inside_80"] == float(inside)

    response = logged_in.get(reverse("dashboard"))
    html = response.content.decode()
    rows = response.context["past_accuracy"]["rows"]
    assert [row["horizon_text"] for row in rows] == ["30 min ahead", "60 min ahead"]
    assert rows[0]["n_matched"] == 1 and rows[0]["mae"].endswith("mg/dL")
    assert 'data-testid="past-accuracy"' in html and "How past forecasts did" in html
    assert 'data-horizon="30" data-scored="1"' in html and "inside the 80% range (1 scored)" in html
    assert str(wording.DISCLAIMER) in html
    german = logged_in.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Wie frühere Prognosen abschnitten" in german and "30 min voraus" in german
    assert "im 80-%-Bereich (1 bewertet)" in german
    # The dashboard's own forecasts (just made) has no outcome yet and does not count.
    assert PredictionLog.objects.for_person(person).count() == 3
    assert recent_accuracy(person, since=timezone.now() - dt.timedelta(hours=24))[30]["n_matched"] == 1


def test_shadow_forecasts_and_older_ones_do_not_count(person):
    load_readings(person)
    log = scored_forecast(person)
    PredictionLog.objects.filter(pk=log.pk).update(issued_at=timezone.now() - dt.timedelta(hours=25))
    assert recent_accuracy(person, since=timezone.now() - dt.timedelta(hours=24)) == {}
    log = scored_forecast(person)
    shadow = PredictionLog.objects.get(pk=log.pk)
    shadow.pk = None
    shadow.shadow_of_id = log.pk
    shadow.save()
    assert recent_accuracy(person, since=timezone.now() - dt.timedelta(hours=24))[30]["n_matched"] == 1


def test_before_any_outcome_the_card_says_so(logged_in, person):
    load_readings(person)
    response = logged_in.get(reverse("dashboard"))
    assert response.context["past_accuracy"]["rows"] == []
    assert 'data-testid="no-past-accuracy"' in response.content.decode()
