"""Outcomes: each forecast point gets the stored reading nearest its time within ±5 minutes;
realized MAE, RMSE and range coverage per model version and horizon follow from them."""

import datetime as dt
import math

import pytest
from django.utils import timezone

from observations.models import Observation, ObservationStatus
from predictions.models import ModelPerformance, PredictionLog
from predictions.outcomes import fill_outcomes, prune_prediction_log
from tests.predictions.conftest import recent_readings, register_model, store_readings

pytestmark = pytest.mark.django_db

T = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.timezone.utc)
MIN = dt.timedelta(minutes=1)


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def reading(person, at, value, **fields):
    return Observation.objects.create(
        person=person, value_mg_dl=value, original_value=value, original_unit="mg/dL",
        effective_at=at, source="test", **fields,
    )


def make_log(person, points, *, ml_model=None, version="1.0.0"):
    """points: [(horizon_min, time, value, half width of the 80% range)]."""
    rows = [
        {
            "horizon_min": h, "time": iso(at), "value_mg_dl": v,
            "lower_80_mg_dl": v - w, "upper_80_mg_dl": v + w,
            "lower_95_mg_dl": v - 2 * w, "upper_95_mg_dl": v + 2 * w,
            "actual_mg_dl": None, "actual_at": None, "matched_at": None,
        }
        for h, at, v, w in points
    ]
    return PredictionLog.objects.create(
        person=person, ml_model=ml_model, model_version=version, variant="stable", algorithm="blend",
        issued_at=T - dt.timedelta(minutes=30), as_of=T - dt.timedelta(minutes=30), unit="mg/dL",
        horizons=[p[0] for p in points], points=rows, provenance={}, quality={},
        outcome_pending=True, outcomes_next_at=min(p[1] for p in points) + 5 * MIN,
    )


def test_the_nearest_reading_within_5_minutes_is_the_outcome(person):
    reading(person, T - 4 * MIN, 100)
    reading(person, T + 3 * MIN, 130)
    reading(person, T + 6 * MIN, 999)
    log = make_log(person, [(30, T, 120, 10)])

    counts = fill_outcomes(now=T + 10 * MIN)

    log.refresh_from_db()
    point = log.points[0]
    assert counts["matched"] == 1
    assert point["actual_mg_dl"] == 130 and point["actual_at"] == iso(T + 3 * MIN)
    assert point["matched_at"] is not None and not log.outcome_pending


def test_a_tie_goes_to_the_earlier_reading(person):
    reading(person, T - 2 * MIN, 100)
    reading(person, T + 2 * MIN, 110)
    log = make_log(person, [(30, T, 120, 10)])
    fill_outcomes(now=T + 10 * MIN)
    log.refresh_from_db()
    assert log.points[0]["actual_mg_dl"] == 100


def test_readings_entered_in_error_do_not_count(person):
    reading(person, T, 300, status=ObservationStatus.ENTERED_IN_ERROR)
    reading(person, T + 4 * MIN, 111)
    log = make_log(person, [(30, T, 120, 10)])
    fill_outcomes(now=T + 10 * MIN)
    log.refresh_from_db()
    assert log.points[0]["actual_mg_dl"] == 111


def test_no_reading_within_5_minutes_waits_for_late_uploads_then_closes(person, settings):
    settings.GLUCAST_OUTCOME_GRACE_MIN = 60
    reading(person, T - 6 * MIN, 100)
    reading(person, T + 6 * MIN, 100)
    log = make_log(person, [(30, T, 120, 10)])

    fill_outcomes(now=T + 10 * MIN)
    log.refresh_from_db()
    assert log.outcome_pending and log.points[0]["matched_at"] is None
    assert log.outcomes_next_at == T + 60 * MIN

    reading(person, T + 1 * MIN, 140)  # uploaded late from the receiver
    fill_outcomes(now=T + 61 * MIN)
    log.refresh_from_db()
    assert log.points[0]["actual_mg_dl"] == 140 and not log.outcome_pending


def test_without_any_reading_the_point_closes_after_the_grace_period(person, settings):
    settings.GLUCAST_OUTCOME_GRACE_MIN = 60
    log = make_log(person, [(30, T, 120, 10)])
    fill_outcomes(now=T + 61 * MIN)
    log.refresh_from_db()
    point = log.points[0]
    assert point["actual_mg_dl"] is None and point["matched_at"] is not None
    assert not log.outcome_pending and ModelPerformance.objects.count() == 0


def test_points_not_yet_due_stay_pending(person):
    reading(person, T, 120)
    reading(person, T + 30 * MIN, 150)
    log = make_log(person, [(30, T, 120, 10), (60, T + 30 * MIN, 140, 20)])

    fill_outcomes(now=T + 10 * MIN)

    log.refresh_from_db()
    assert log.points[0]["actual_mg_dl"] == 120 and log.points[1]["matched_at"] is None
    assert log.outcome_pending and log.outcomes_next_at == T + 35 * MIN


def test_realized_errors_and_coverage_per_version_and_horizon(person, api):
    model = register_model(person)
    # Horizon 30: errors +10 (inside 80%) and -30 (outside 80%, inside 95%).
    reading(person, T, 110)
    reading(person, T + 60 * MIN, 150)
    make_log(person, [(30, T, 120, 15)], ml_model=model)
    make_log(person, [(30, T + 60 * MIN, 120, 15)], ml_model=model)

    fill_outcomes(now=T + 2 * dt.timedelta(hours=1))
    fill_outcomes(now=T + 2 * dt.timedelta(hours=1))  # running again adds nothing

    row = ModelPerformance.objects.get(ml_model=model, horizon_min=30)
    assert row.n_matched == 2
    assert row.mae_mg_dl == pytest.approx(20.0)
    assert row.rmse_mg_dl == pytest.approx(math.sqrt((10**2 + 30**2) / 2))
    assert (row.coverage_80, row.coverage_95) == (0.5, 1.0)

    body = api.get(f"/api/models/{model.pk}/performance/").json()
    assert body["model"]["version"] == "1.0.0"
    assert body["horizons"] == [
        {"horizon_min": 30, "n_matched": 2, "mae_mg_dl": 20.0, "rmse_mg_dl": round(math.sqrt(500), 2),
         "coverage_80": 0.5, "coverage_95": 1.0}
    ]


def test_another_persons_model_performance_is_404(api, other_person):
    model = register_model(other_person)
    assert api.get(f"/api/models/{model.pk}/performance/").status_code == 404


def test_end_to_end_a_live_forecast_gets_its_outcomes(api, person):
    store_readings(person, recent_readings(hours=4, seed=4))
    model = register_model(person)
    body = api.post("/api/predictions/glucose/", {}, format="json").json()
    # The next two hours of readings arrive (times after now: the clock is simulated below).
    start = dt.datetime.fromisoformat(body["as_of"].replace("Z", "+00:00"))
    later = recent_readings(hours=2.5, seed=5, end=start + dt.timedelta(hours=2, minutes=20))
    later = later[later["time"] > start + dt.timedelta(minutes=2)]
    store_readings(person, later)

    fill_outcomes(now=start + dt.timedelta(hours=2, minutes=30))

    detail = api.get(f"/api/predictions/{body['prediction_id']}/").json()
    times = later["time"].dt.to_pydatetime()
    for point in detail["points"]:
        target = dt.datetime.fromisoformat(point["time"].replace("Z", "+00:00"))
        nearest = min(times, key=lambda t: (abs(t - target), t))
        assert abs(nearest - target) <= dt.timedelta(minutes=5)
        expected = float(later.loc[later["time"] == nearest, "glucose_mg_dl"].iloc[0])
        assert point["actual"] == round(expected)
    rows = ModelPerformance.objects.filter(person=person, ml_model=model).order_by("horizon_min")
    assert [r.horizon_min for r in rows] == [30, 60, 120] and all(r.n_matched == 1 for r in rows)


def test_a_replay_of_the_past_is_not_scored(api, person):
    frame = recent_readings(hours=6, seed=4)
    store_readings(person, frame)
    as_of = frame["time"].iloc[-40].to_pydatetime() + dt.timedelta(seconds=30)  # ~3 h ago
    body = api.post("/api/predictions/glucose/", {"as_of": as_of.isoformat()}, format="json").json()

    log = PredictionLog.objects.get(pk=body["prediction_id"])
    assert not log.outcome_pending
    fill_outcomes()
    assert ModelPerformance.objects.count() == 0


def test_old_forecasts_are_pruned_by_the_retention_setting(person, settings):
    settings.GLUCAST_PREDICTION_RETENTION_DAYS = 30
    old = make_log(person, [(30, T, 120, 10)])
    new = make_log(person, [(30, T, 120, 10)])
    PredictionLog.objects.filter(pk=old.pk).update(issued_at=timezone.now() - dt.timedelta(days=31))
    PredictionLog.objects.filter(pk=new.pk).update(issued_at=timezone.now() - dt.timedelta(days=29))

    assert prune_prediction_log() == 1
    assert list(PredictionLog.objects.values_list("pk", flat=True)) == [new.pk]


def test_batch_forecasts_have_their_own_shorter_retention(person, settings):
    settings.GLUCAST_PREDICTION_RETENTION_DAYS = 180
    settings.GLUCAST_BATCH_PREDICTION_RETENTION_DAYS = 30
    api_log, batch_old, batch_new = (make_log(person, [(30, T, 120, 10)]) for _ in range(3))
    PredictionLog.objects.filter(pk__in=[batch_old.pk, batch_new.pk]).update(source="batch")
    for log, days in [(api_log, 40), (batch_old, 40), (batch_new, 20)]:
        PredictionLog.objects.filter(pk=log.pk).update(issued_at=timezone.now() - dt.timedelta(days=days))

    assert prune_prediction_log() == 1
    assert set(PredictionLog.objects.values_list("pk", flat=True)) == {api_log.pk, batch_new.pk}
