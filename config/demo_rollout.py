"""Release 2 rolled out through the lifecycle on the demo people: shadow first, then a canary, with
the arm comparison computed from logged forecasts and their matched outcomes.

Why a replay: the lifecycle judges a release by forecasts it logged and the readings that
followed them, which live takes days. The demo people's readings already contain those days, so
the last `held_back` of them are served again origin by origin, as they would have been, by the
real parts: release 1 and release 2 are trained by the registry's training service on the days
BEFORE the held-back part only (so no model has seen what it is scored on); the rollout changes are
the lifecycle's services (each a RolloutEvent with its reason, visible in the admin); every origin
is one batch forecast at that instant (predictions.batch, the scheduled serving path: model
choice, arms, the log); the shadow forecasts come from the worker's shadow sweep; outcomes from
the outcome matching; the figures from the rollout page's own comparisons (paired_comparison,
arm_comparison) and the verdict from the automated decision (evaluate_rollout), all run as of
the replayed moment.

    replay_release_rollout(people, *, held_back=2 days, every=15 min, canary_percentage=None,
                           shadow_percentage=100, actor="demo:rollout", serve_rejected=True,
                           progress=None) -> dict

Phases: the held-back span (up to two hours before the last reading, so every 30/60/120-minute
outcome exists) is split in two halves. First half: release 1 stable, release 2 in shadow for the
shadow share (default everyone). Then the canary percentage (default: the smallest that puts half
the people in the canary, half_canary_percentage) moves to release 2 (the shadow share
follows behind it, so the people still on release 1 keep producing pairs); second half replayed.
The rollout is left in its canary state: `bin/run` then goes on serving it live.

Training never runs in a web request; this runs in a management command (`manage.py
demo_rollout`) or a test.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from mlmodels.core.schemas import RELEASE_1, RELEASE_2
from mlmodels.lifecycle import activate_model
from mlmodels.models import GLUCOSE_PREDICTION, JobTrigger, MLModel, ModelStatus, Rollout
from mlmodels.rollouts import bucket, create_rollout, set_canary_percentage, set_candidate
from mlmodels.services import train_person
from observations.models import Observation
from predictions.batch import predict_batch
from predictions.decisions import evaluate_rollout, judge
from predictions.monitoring import arm_comparison
from predictions.outcomes import fill_outcomes
from predictions.selection import choose_models
from predictions.shadow import paired_comparison, run_pending_shadows

logger = logging.getLogger(__name__)

DEMO_ACTOR = "demo:rollout"
DEFAULT_HELD_BACK = timedelta(days=2)
DEFAULT_EVERY = timedelta(minutes=15)
# The longest default horizon: origins stop this long before the last reading, so every point
# of every replayed forecast has its outcome among the stored readings.
LAST_HORIZON = timedelta(minutes=120)
# Outcome matching runs every 5 minutes in production; once per replayed hour is enough here
# (the result is the same: a point is matched once its time + 5 min has passed).
OUTCOMES_EVERY = timedelta(hours=1)


class ReplayError(ValueError):
    """The replay cannot run as asked (the message says why)."""


def replay_window(people, held_back: timedelta) -> tuple[datetime, datetime]:
    """(first origin, last origin): the last `held_back` of the demo people's readings, ending
    LAST_HORIZON before the latest reading."""
    last = Observation.objects.filter(person__in=people, kind=Observation.Kind.CGM).usable().aggregate(
        last=Max("effective_at")
    )["last"]
    if last is None:
        raise ReplayError("The demo people have no readings: run `manage.py load_demo` first.")
    start, stop = last - held_back, last - LAST_HORIZON
    if stop - start < timedelta(hours=2):
        raise ReplayError(f"Hold back more than {LAST_HORIZON + timedelta(hours=2)} to replay anything.")
    return start, stop


def train_releases(people, *, until: datetime, time_budget_s: float | None = None,
                   serve_rejected: bool = True, actor: str = DEMO_ACTOR) -> list[dict]:
    """Release 1, then release 2, for each person, from their readings up to `until` only,
    through the registry's training: deploy-if-better decides what becomes active, and release 2
    is compared with the person's release-1 version, as everyone's next training after a release
    ships would be.

    A version deploy-if-better rejected cannot serve, so the rollout would leave that person out
    of its comparison. With `serve_rejected` the operator's override (lifecycle.activate_model,
    an event with its reason) puts it into service, so the rollout judges the release on every
    person, from outcomes, which is what it is for; the report still says what was rejected."""
    rows = []
    for person in people:
        row = {"person": person.pk, "name": person.display_name or str(person)}
        for release in (RELEASE_1, RELEASE_2):
            job = train_person(
                person, trigger=JobTrigger.OPERATOR, release=release, data_until=until, time_budget_s=time_budget_s
            )
            model = job.model
            row[release] = {
                "job": job.pk, "status": job.status, "reason": job.reason,
                "version": model.version if model else None,
                "model_status": model.status if model else None,
                "decision": (model.comparison or {}).get("decision") if model else None,
                "activated_by_operator": False,
            }
            if serve_rejected and model is not None and model.status == ModelStatus.REJECTED:
                activate_model(
                    model, actor=actor,
                    reason=(
                        f"Demo replay: release {release} version {model.version} was not better than the active "
                        "reference on its held-out days; put into service so the rollout compares both releases "
                        "on every demo person from their outcomes."
                    ),
                )
                row[release]["activated_by_operator"] = True
        rows.append(row)
    return rows


def _replay(people, start: datetime, stop: datetime, every: timedelta, progress=None) -> dict:
    """One batch forecast per origin in [start, stop), the shadow sweep after each (as the
    worker runs it after every batch), outcomes matched as of the replayed moment."""
    counts = {"origins": 0, "forecasts": 0, "shadows": 0, "shadow_failures": 0}
    person_ids = [p.pk for p in people]
    origin, next_outcomes = start, start + OUTCOMES_EVERY
    while origin < stop:
        batch = predict_batch(people, now=origin)
        shadows = run_pending_shadows()
        counts["origins"] += 1
        counts["forecasts"] += batch.n_forecasts
        counts["shadows"] += shadows.get("shadows", 0)
        counts["shadow_failures"] += shadows.get("failures", 0)
        if origin >= next_outcomes:
            fill_outcomes(now=origin, person_ids=person_ids)
            next_outcomes = origin + OUTCOMES_EVERY
        if progress is not None and counts["origins"] % 24 == 0:
            progress(f"  … {origin:%Y-%m-%d %H:%M} UTC: {counts['forecasts']} forecasts, {counts['shadows']} shadows")
        origin += every
    fill_outcomes(now=stop, person_ids=person_ids)
    return counts


def half_canary_percentage(people, rollout: Rollout) -> int:
    """The smallest canary percentage that puts half of these people (at least one) in the canary.

    With five people a fixed 50% can put all or none of them there (their buckets are a hash);
    an operator would read the buckets on the Serving-now page and choose so — the same rule."""
    buckets = sorted(bucket(p.pk, rollout.pk) for p in people)
    return buckets[max(1, len(buckets) // 2) - 1] + 1


def _verdict(rollout: Rollout, *, at: datetime) -> dict:
    """The automated decision as the 15-minute schedule would take it at `at` (and acts on it:
    a rollback is real), plus what it would say with automatic promotion switched on."""
    rollout.refresh_from_db()
    decision = evaluate_rollout(rollout, now=at)
    rollout.refresh_from_db()
    comparison = arm_comparison(rollout, until=at)
    paired = paired_comparison(rollout, until=at)
    with_promotion, reasons = judge(comparison, auto_promote=True, paired=paired)
    return {**decision, "with_auto_promote": with_promotion, "with_auto_promote_reasons": reasons}


def _describe_paired(paired: dict) -> str:
    if not paired.get("n_pairs") or paired.get("relative_difference") is None:
        return "no paired outcomes yet"
    low, high = paired["relative_interval"] or (None, None)
    interval = f", 95% interval {low:+.1%} to {high:+.1%}" if low is not None else ""
    return (
        f"release 2 paired MAE {paired['mae_candidate']:.2f} vs release 1 {paired['mae_served']:.2f} mg/dL "
        f"({paired['relative_difference']:+.1%}{interval}) on {paired['n_pairs']} pairs from {paired['n_people']} people"
    )


def replay_release_rollout(
    people,
    *,
    held_back: timedelta = DEFAULT_HELD_BACK,
    every: timedelta = DEFAULT_EVERY,
    canary_percentage: int | None = None,
    shadow_percentage: int = 100,
    actor: str = DEMO_ACTOR,
    time_budget_s: float | None = None,
    serve_rejected: bool = True,
    progress=None,
) -> dict:
    """Train both releases on the earlier days, then roll release 2 out over the held-back days:
    shadow, then canary (module docstring). Returns every figure the report prints."""
    people = list(people)
    if Rollout.objects.filter(model_type=GLUCOSE_PREDICTION).exists():
        raise ReplayError(
            f"{GLUCOSE_PREDICTION} already has a rollout; the replay builds one from release 1 up "
            "(`manage.py demo_rollout --replace` deletes the existing one and its history first)."
        )
    if MLModel.objects.filter(person__in=people).exists():
        raise ReplayError("The people already have model versions; the replay trains its own on the earlier days.")
    start, stop = replay_window(people, held_back)
    middle = start + (stop - start) / 2
    say = progress or (lambda _text: None)

    say(f"Training release 1 and release 2 on the readings before {start:%Y-%m-%d %H:%M} UTC …")
    trained = train_releases(people, until=start, time_budget_s=time_budget_s, serve_rejected=serve_rejected,
                             actor=actor)

    period = f"{start:%Y-%m-%d %H:%M} to {stop:%Y-%m-%d %H:%M} UTC"
    rollout = create_rollout(
        GLUCOSE_PREDICTION, RELEASE_1, actor=actor,
        reason=f"Demo replay of {period}: release 1 is the stable release everyone is served.",
    )
    rollout = set_candidate(
        rollout, RELEASE_2, actor=actor, shadow_percentage=shadow_percentage, comparison_since=start,
        reason=(
            f"Demo replay: release 2 (built on the population prior) in shadow for {shadow_percentage}% of "
            f"people from {start:%Y-%m-%d %H:%M} UTC; nobody is answered differently."
        ),
    )
    say(f"Shadow: replaying {start:%Y-%m-%d %H:%M} to {middle:%Y-%m-%d %H:%M} UTC every {every} …")
    shadow_counts = _replay(people, start, middle, every, progress)
    shadow_paired = paired_comparison(rollout, start, until=middle)
    shadow_arms = arm_comparison(rollout, start, until=middle)
    shadow_verdict = _verdict(rollout, at=middle)
    rollout.refresh_from_db()
    result = {
        "period": {"start": start.isoformat(), "middle": middle.isoformat(), "stop": stop.isoformat()},
        "every_min": every.total_seconds() / 60,
        "trained": trained,
        "rollout_id": rollout.pk,
        "shadow": {"counts": shadow_counts, "paired": shadow_paired, "arms": shadow_arms, "verdict": shadow_verdict},
        "canary": None,
    }
    if rollout.canary_percentage == 0 and rollout.shadow_percentage == 0:
        say("The automated decision stopped the shadow run; no canary.")
        result["status"] = rollout.status
        return result

    if canary_percentage is None:
        canary_percentage = half_canary_percentage(people, rollout)
    rollout = set_canary_percentage(
        rollout, canary_percentage, actor=actor,
        reason=f"Demo replay: after the shadow half — {_describe_paired(shadow_paired)}; "
        f"automated decision: {shadow_verdict['decision']}. Canary {canary_percentage}% from "
        f"{middle:%Y-%m-%d %H:%M} UTC.",
    )
    say(f"Canary {canary_percentage}%: replaying {middle:%Y-%m-%d %H:%M} to {stop:%Y-%m-%d %H:%M} UTC …")
    canary_counts = _replay(people, middle, stop, every, progress)
    # Everything the replayed forecasts point at is stored already: match it all.
    fill_outcomes(now=timezone.now(), person_ids=[p.pk for p in people])
    choices = choose_models([p.pk for p in people])
    result["canary"] = {
        "counts": canary_counts,
        "percentage": canary_percentage,
        "people_by_arm": {
            p.display_name or str(p): ("canary" if choices[p.pk].arm == "canary" else
                                       "stable + shadow" if choices[p.pk].shadow is not None else choices[p.pk].arm)
            for p in people
        },
        "arms": arm_comparison(rollout, middle, until=stop),
        "paired": paired_comparison(rollout, middle, until=stop),
        "verdict": _verdict(rollout, at=stop),
    }
    rollout.refresh_from_db()
    result["whole"] = {
        "arms": arm_comparison(rollout, start, until=stop),
        "paired": paired_comparison(rollout, start, until=stop),
    }
    result["status"] = rollout.status
    return result
