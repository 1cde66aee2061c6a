"""Batch forecasts, the predict_batch command and the django-q2 schedules."""

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from predictions.batch import predict_batch
from predictions.models import PredictionLog
from predictions.schedules import SCHEDULES, ensure_schedules
from tests.factories import PersonFactory
from tests.predictions.conftest import recent_readings, register_model, store_readings, trained_model_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    """Two with (identical) models, one without, one whose data is stale, one with none."""
    with_model = [PersonFactory(), PersonFactory()]
    without_model = PersonFactory()
    stale = PersonFactory()
    PersonFactory()
    for seed, person in enumerate([*with_model, without_model]):
        store_readings(person, recent_readings(hours=4, seed=seed))
        if person in with_model:
            register_model(person)
    store_readings(stale, recent_readings(hours=4, end=timezone.now() - dt.timedelta(hours=1)))
    return {"with_model": with_model, "without_model": without_model, "stale": stale}


def test_everyone_with_fresh_data_is_forecast_and_stored(people):
    result = predict_batch()

    assert (result.n_people, result.n_fresh, result.n_forecasts) == (5, 3, 3)
    assert result.n_groups == 2  # one model artifact shared by two people + the baseline
    logs = {log.person_id: log for log in PredictionLog.objects.all()}
    assert set(logs) == {p.pk for p in [*people["with_model"], people["without_model"]]}
    for person in people["with_model"]:
        log = logs[person.pk]
        assert (log.source, log.variant, log.model_version) == ("batch", "stable", "1.0.0")
        assert [p["horizon_min"] for p in log.points] == [30, 60, 120]
        assert log.outcome_pending and log.provenance["observations"]
    assert logs[people["without_model"].pk].variant == "population"  # the prior serves them


def test_people_without_a_new_reading_are_not_forecast_again(people):
    first = predict_batch()
    again = predict_batch()
    assert (first.n_forecasts, again.n_forecasts, again.n_unchanged) == (3, 0, 3)

    person = people["without_model"]
    store_readings(person, recent_readings(hours=0.1, seed=9, end=timezone.now()))
    third = predict_batch()
    assert third.n_forecasts == 1 and PredictionLog.objects.filter(person=person).count() == 2


def test_a_batch_at_a_past_moment_is_not_taken_for_a_repeat_of_later_forecasts(people):
    """A replay (config/demo_rollout.py) forecasts past origins after live batches have run:
    only forecasts issued up to the batch's own moment count as its repeats."""
    live = predict_batch()
    # One past moment for both past batches: with a fresh `now - 20 min` each, a reading that
    # fell between the two moments (the first batch's duration, 20 minutes ago) was new input
    # for the second, and it forecast that person again.
    moment = timezone.now() - dt.timedelta(minutes=20)
    past = predict_batch(now=moment)

    assert live.n_forecasts == 3
    assert (past.n_forecasts, past.n_unchanged) == (3, 0)
    assert predict_batch(now=moment).n_unchanged == 3  # that one repeats


def test_a_batch_forecast_equals_the_single_forecast_for_the_same_time(people):
    from predictions.services import forecast_for_person

    now = timezone.now()
    predict_batch(now=now)
    person = people["with_model"][0]
    batch = PredictionLog.objects.get(person=person, source="batch")
    single = forecast_for_person(person, as_of=now)
    assert batch.points == single.points and batch.provenance == single.provenance


def test_the_number_of_queries_does_not_grow_with_people(people):
    with CaptureQueriesContext(connection) as few:
        predict_batch(people["with_model"][:1])
    PredictionLog.objects.all().delete()
    with CaptureQueriesContext(connection) as all_of_them:
        predict_batch()
    assert len(all_of_them) <= len(few) + 2


def test_a_broken_model_falls_back_for_its_group(people):
    files, _ = trained_model_files()
    manifest = json.loads(files["manifest.json"])
    manifest["feature_schema"]["version"] = 999
    broken = people["without_model"]
    register_model(broken, files={**files, "manifest.json": json.dumps(manifest).encode()})

    result = predict_batch()

    log = PredictionLog.objects.get(person=broken)
    assert log.variant == "population" and log.fallback_reason.startswith("feature_schema_mismatch")
    assert result.n_fallbacks == 1 and result.n_forecasts == 3


def test_the_command_forecasts_everyone_or_the_named_users(people, capsys):
    call_command("predict_batch", "--all")
    assert PredictionLog.objects.count() == 3
    assert "3 forecasts stored" in capsys.readouterr().out

    name = people["with_model"][0].owner.username
    PredictionLog.objects.all().delete()
    call_command("predict_batch", name)
    assert PredictionLog.objects.filter(person=people["with_model"][0]).count() == 1
    assert PredictionLog.objects.count() == 1

    with pytest.raises(CommandError, match="no person for user"):
        call_command("predict_batch", "nobody-by-that-name")
    with pytest.raises(CommandError, match="not both"):
        call_command("predict_batch", name, "--all")
    with pytest.raises(CommandError):
        call_command("predict_batch")


def test_the_scheduled_task_runs_the_batch(people):
    from predictions.tasks import fill_outcomes_task, predict_batch_task, prune_prediction_log_task

    assert predict_batch_task()["n_forecasts"] == 3
    assert fill_outcomes_task()["logs"] == 0  # nothing due yet
    assert prune_prediction_log_task() == 0


def test_schedules_are_created_once_and_keep_an_operators_changes():
    from django_q.models import Schedule

    ensure_schedules()
    ensure_schedules()
    rows = {s.name: s for s in Schedule.objects.all()}
    assert set(rows) >= {name for name, *_ in SCHEDULES}
    assert Schedule.objects.count() == len(rows)  # nothing created twice
    outcomes = rows["glucast: fill forecast outcomes"]
    assert (outcomes.func, outcomes.schedule_type, outcomes.minutes) == (
        "predictions.tasks.dispatch_outcomes_task", "I", 5)
    assert rows["glucast: batch forecasts"].minutes == 5
    assert rows["glucast: prune prediction log"].schedule_type == "D"

    outcomes.minutes = 10
    outcomes.save()
    ensure_schedules()
    assert Schedule.objects.get(pk=outcomes.pk).minutes == 10
    ensure_schedules(reset=True)
    assert Schedule.objects.get(pk=outcomes.pk).minutes == 5
    assert Schedule.objects.count() == len(rows)
