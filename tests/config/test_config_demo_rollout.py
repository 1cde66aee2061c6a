"""Release 2 rolled out through the lifecycle on a replay of the last day (config/demo_rollout.py):
real trainings on the earlier days, real batch forecasts at each replayed origin, the real shadow
sweep and outcome matching; the rollout goes shadow -> canary and both arms have matched outcomes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from config.demo_rollout import ReplayError, replay_release_rollout
from mlmodels.models import EventAction, MLModel, Rollout, RolloutEvent, RolloutStatus
from mlmodels.rollouts import RolloutError, create_rollout, set_candidate
from mlmodels.services import prior_for_release
from observations.synthetic import generate_cgm
from predictions.models import PredictionLog
from tests.factories import PersonFactory
from tests.predictions.conftest import store_readings

pytestmark = pytest.mark.django_db


@pytest.fixture
def evidence_rules(settings):
    # A day of three people instead of weeks of many: the minimum scaled down, the rules the same.
    settings.GLUCAST_ROLLOUT_MIN_OUTCOMES = 20
    settings.GLUCAST_ROLLOUT_MIN_PEOPLE = 2
    # About the mechanics, not which release wins on synthetic people: no automated rollback.
    settings.GLUCAST_ROLLOUT_MAE_MARGIN = 10.0


def three_people():
    end = (timezone.now() - dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
    people = []
    for seed in (1, 2, 3):
        person = PersonFactory()
        # 4.5 days: release 1 needs 3 days before the held-back one.
        store_readings(person, generate_cgm(4.5, seed=seed, end=end, tz="Europe/Berlin"))
        people.append(person)
    return people


def test_release_2_goes_shadow_then_canary_with_outcomes_in_both_arms(evidence_rules):
    people = three_people()

    result = replay_release_rollout(
        people, held_back=dt.timedelta(days=1), every=dt.timedelta(minutes=30), time_budget_s=1.5
    )

    start = dt.datetime.fromisoformat(result["period"]["start"])
    # Both releases, trained on the days before the replay only.
    for person in people:
        majors = {m.version_major: m for m in MLModel.objects.filter(person=person)}
        assert set(majors) == {1, 2}
        assert all(m.data_end <= start for m in majors.values())
        assert all(m.status in ("ready", "archived") for m in majors.values())  # rejected ones put into service

    shadow = result["shadow"]
    assert shadow["counts"]["forecasts"] > 0 and shadow["counts"]["shadows"] > 0
    assert shadow["paired"]["n_people"] == 3 and shadow["paired"]["enough_evidence"]
    assert shadow["paired"]["difference_interval"] is not None
    assert shadow["arms"]["arms"]["stable"]["n_matched"] > 0
    assert shadow["verdict"]["decision"] == "keep"

    canary = result["canary"]
    assert canary is not None, shadow["verdict"]
    arms = canary["arms"]["arms"]
    assert arms["canary"]["release"] == 2 and arms["stable"]["release"] == 1
    assert arms["canary"]["n_matched"] > 0 and arms["stable"]["n_matched"] > 0
    assert arms["canary"]["horizons"]["30"]["mae_mg_dl"] is not None
    assert arms["stable"]["horizons"]["60"]["coverage_80"] is not None
    assert sorted(canary["people_by_arm"].values()) == ["canary", "stable + shadow", "stable + shadow"]
    assert canary["paired"]["n_pairs"] > 0  # the people still on release 1 keep producing pairs

    # The logged forecasts are the replayed ones: issued at past origins, scored.
    rollout = Rollout.objects.get()
    assert rollout.status == RolloutStatus.CANARY and rollout.candidate_since == start
    served = PredictionLog.objects.filter(rollout=rollout, source="batch")
    assert served.filter(arm="canary", variant="canary", model_version__startswith="2.").exists()
    assert not served.filter(issued_at__lt=start).exists()
    assert PredictionLog.objects.filter(rollout=rollout, source="shadow", shadow_of__isnull=False).exists()
    # The history a staff user reads in the admin, each change with its reason.
    actions = list(RolloutEvent.objects.filter(rollout=rollout).order_by("id").values_list("action", flat=True))
    assert actions == [EventAction.CREATED, EventAction.CANDIDATE_SET, EventAction.PERCENTAGE_SET]
    assert "paired MAE" in RolloutEvent.objects.get(action=EventAction.PERCENTAGE_SET).reason


def test_the_replay_refuses_a_database_that_already_has_a_rollout():
    person = PersonFactory()
    create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")

    with pytest.raises(ReplayError, match="already has a rollout"):
        replay_release_rollout([person])
    with pytest.raises(CommandError, match="--replace"):
        call_command("demo_rollout")


def test_a_comparison_cannot_be_said_to_start_in_the_future_or_without_a_time_zone():
    rollout = create_rollout("glucose-prediction", 1, actor="test", reason="release 1 serves")
    for moment in (timezone.now() + dt.timedelta(hours=1), dt.datetime(2026, 1, 1, 12, 0)):
        with pytest.raises(RolloutError, match="comparison can start"):
            set_candidate(rollout, 2, actor="test", reason="try 2", shadow_percentage=10, comparison_since=moment)
    assert Rollout.objects.get().candidate_release is None


def test_training_names_the_releases_it_can_train():
    assert prior_for_release(1) is None
    assert prior_for_release(3) is not None  # release 3 starts from the prior too
    with pytest.raises(ValueError, match="release 4 cannot be trained"):
        prior_for_release(4)
