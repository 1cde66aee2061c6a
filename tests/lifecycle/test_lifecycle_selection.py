"""choose_model honours pin > rollout arm > active model, and every forecast records its variant,
arm and rollout."""

import pytest

from mlmodels.models import EventAction, RolloutEvent, RolloutStatus
from mlmodels.rollouts import (
    RolloutError,
    bucket,
    create_rollout,
    generation_token,
    pin_person,
    promote_candidate,
    rollback_to_previous_stable,
    set_candidate,
    set_canary_percentage,
    stop_canary,
    unpin_person,
)
from predictions.batch import predict_batch
from predictions.models import PredictionLog
from predictions.selection import choose_model, choose_models
from predictions.services import forecast_for_person
from tests.factories import PersonFactory
from tests.lifecycle.conftest import give_readings, make_model

pytestmark = pytest.mark.django_db

R = "operator"  # a name as actor: what the management command records


def people_with_two_releases(n=6):
    people = []
    for _ in range(n):
        person = PersonFactory()
        make_model(person, "1.0.0", status="archived")
        make_model(person, "1.1.0")
        make_model(person, "2.0.0", active=True)
        people.append(person)
    return people


def test_without_a_rollout_the_active_model_serves_and_without_one_the_baseline(person, other_person):
    model = make_model(person, "1.0.0", active=True)
    make_model(person, "1.1.0", status="rejected")

    assert choose_model(person) == (model, "stable")
    assert choose_model(person).arm == "" and choose_model(person).rollout_id is None
    assert choose_model(other_person) == (None, "baseline")


def test_rollout_serves_each_arm_its_release_and_moves_people_by_bucket():
    people = people_with_two_releases(8)
    rollout = create_rollout("glucose-prediction", 1, actor=R, reason="release 1 is what we trust")
    choices = choose_models([p.pk for p in people])
    # Release 1: the newest usable 1.x version even though 2.0.0 is the active one.
    assert {c.mlmodel.version for c in choices.values()} == {"1.1.0"}
    assert {(c.variant, c.arm, c.rollout_id) for c in choices.values()} == {("stable", "stable", rollout.pk)}

    set_candidate(rollout, 2, percentage=50, actor=R, reason="try release 2 on half")
    choices = choose_models([p.pk for p in people])
    for person in people:
        choice = choices[person.pk]
        if bucket(person.pk, rollout.pk) < 50:
            assert (choice.mlmodel.version, choice.variant, choice.arm) == ("2.0.0", "canary", "canary")
        else:
            assert (choice.mlmodel.version, choice.variant, choice.arm) == ("1.1.0", "stable", "stable")


def test_a_canary_person_without_a_candidate_model_stays_on_stable_and_without_stable_gets_baseline(person):
    make_model(person, "1.0.0", active=True)
    rollout = create_rollout("glucose-prediction", 1, actor=R, reason="start")
    set_candidate(rollout, 2, percentage=100, actor=R, reason="everyone who has release 2")
    assert choose_model(person) == (person.ml_models.get(version="1.0.0"), "stable")
    assert choose_model(person).arm == "stable"

    promote_candidate(rollout, actor=R, reason="release 2 is stable now")
    choice = choose_model(person)
    assert choice == (None, "baseline") and choice.arm == "stable"


def test_a_pin_wins_over_the_rollout_and_the_active_model(person):
    old = make_model(person, "1.0.0", status="archived")
    make_model(person, "1.1.0", active=True)
    rollout = create_rollout("glucose-prediction", 1, actor=R, reason="start")
    set_candidate(rollout, 2, percentage=100, actor=R, reason="all in")

    pin_person(old, actor=R, reason="1.1.0 misbehaves for this person")
    choice = choose_model(person)
    assert choice == (old, "stable") and choice.arm == "pinned" and choice.rollout_id is None

    unpin_person(person, actor=R, reason="fixed")
    assert choose_model(person).mlmodel.version == "1.1.0"
    actions = list(RolloutEvent.objects.filter(person=person).values_list("action", flat=True))
    assert actions == [EventAction.UNPINNED, EventAction.PINNED]


def test_a_pin_to_a_version_without_files_is_refused(person):
    ghost = make_model(person, "1.0.0", files=False)
    with pytest.raises(RolloutError):
        pin_person(ghost, actor=R, reason="x")


def test_every_forecast_records_variant_arm_and_rollout_single_and_batch():
    people = people_with_two_releases(6)
    for i, person in enumerate(people):
        give_readings(person, seed=i)
    rollout = create_rollout("glucose-prediction", 1, actor=R, reason="start")
    set_candidate(rollout, 2, percentage=50, actor=R, reason="half")

    for person in people:
        log = forecast_for_person(person)
        expected = "canary" if bucket(person.pk, rollout.pk) < 50 else "stable"
        assert (log.variant, log.arm, log.rollout_id) == (expected, expected, rollout.pk)
        assert log.model_version == ("2.0.0" if expected == "canary" else "1.1.0")

    predict_batch(people)
    batch = PredictionLog.objects.filter(source="batch")
    assert batch.count() == len(people)
    for log in batch:
        expected = "canary" if bucket(log.person_id, rollout.pk) < 50 else "stable"
        assert (log.variant, log.arm, log.rollout_id) == (expected, expected, rollout.pk)


def test_rollout_changes_are_recorded_with_actor_reason_before_and_after(staff_user):
    rollout = create_rollout("glucose-prediction", 1, actor=staff_user, reason="start")
    token = generation_token()
    set_candidate(rollout, 2, actor=staff_user, reason="candidate")
    set_canary_percentage(rollout, 10, actor=staff_user, reason="10% first")
    set_canary_percentage(rollout, 20, actor=staff_user, reason="looks fine")
    assert generation_token() != token
    promote_candidate(rollout, actor=staff_user, reason="better on every figure")
    rollout.refresh_from_db()
    assert (rollout.stable_release, rollout.candidate_release, rollout.previous_stable_release) == (2, None, 1)
    assert rollout.status == RolloutStatus.STABLE and rollout.canary_percentage == 0

    rollback_to_previous_stable(rollout, actor=staff_user, reason="complaints after promotion")
    rollout.refresh_from_db()
    assert (rollout.stable_release, rollout.candidate_release, rollout.canary_percentage) == (1, 2, 0)
    assert rollout.status == RolloutStatus.ROLLED_BACK

    events = list(rollout.events.order_by("created_at", "id"))
    assert [e.action for e in events] == [
        "created", "candidate_set", "percentage_set", "percentage_set", "promoted", "rolled_back",
    ]
    assert all(e.actor == staff_user and e.actor_name == "operator" for e in events)
    assert events[3].before["canary_percentage"] == 10 and events[3].after["canary_percentage"] == 20
    assert events[3].reason == "looks fine"


def test_bad_rollout_changes_are_refused_and_change_nothing():
    rollout = create_rollout("glucose-prediction", 1, actor=R, reason="start")
    with pytest.raises(RolloutError, match="reason"):
        set_candidate(rollout, 2, actor=R, reason="  ")
    with pytest.raises(RolloutError, match="candidate release"):
        set_canary_percentage(rollout, 10, actor=R, reason="no candidate yet")
    set_candidate(rollout, 2, actor=R, reason="ok")
    for bad in (-1, 101, 12.5, True, "10"):
        with pytest.raises(RolloutError, match="0 to 100"):
            set_canary_percentage(rollout, bad, actor=R, reason="bad")
    with pytest.raises(RolloutError, match="differ"):
        set_candidate(rollout, 1, actor=R, reason="same as stable")
    with pytest.raises(RolloutError, match="previous stable"):
        rollback_to_previous_stable(rollout, actor=R, reason="nothing before")
    with pytest.raises(RolloutError, match="already has a rollout"):
        create_rollout("glucose-prediction", 3, actor=R, reason="again")
    rollout.refresh_from_db()
    assert (rollout.candidate_release, rollout.canary_percentage) == (2, 0)
    assert rollout.events.count() == 2


def test_stopping_the_canary_says_why(person):
    rollout = create_rollout("glucose-prediction", 1, actor=R, reason="start")
    set_candidate(rollout, 2, percentage=30, actor=R, reason="try")
    stop_canary(rollout, reason="Automated rollback: worse", evidence={"mae": 1})
    rollout.refresh_from_db()
    assert rollout.canary_percentage == 0 and rollout.status == "rolled_back"
    assert rollout.status_reason == "Automated rollback: worse"
    event = rollout.events.first()
    assert event.action == "auto_rolled_back" and event.actor is None and event.actor_name == "automation"
    assert event.evidence == {"mae": 1}
