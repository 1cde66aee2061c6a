"""Which model serves whom: deterministic canary assignment, pins, and the rollout changes staff
(or the automated decisions) make — each recorded as a RolloutEvent and made visible to every
process through the ServingState generation.

Choosing (called by predictions.selection for every forecast):

    assign_models(person_ids, model_type) -> {person_id: Choice}

    1. a pin (ModelPin) serves its version                                arm "pinned"
    2. with a Rollout for the model type: bucket(person, rollout) < canary percentage and the
       person has a usable model of the candidate release -> that model    arm "canary"
       otherwise the person's model of the stable release                  arm "stable"
       (no model of that release: the baseline answers, variant "baseline");
       the next `shadow_percentage` buckets after the canary also get their model of the
       candidate release as `Choice.shadow`: computed after the answer, logged, never shown
    3. without a Rollout: the person's active model (or the baseline)      arm ""

A person's *model of release R* is their active version when its MAJOR is R, else their newest
usable version of R (status ready or archived, artifacts still stored). A release whose feature
schema was retired (RetiredSchema, `manage.py retire_schema`) is never chosen.

Changing (each in one transaction with select_for_update, an event, and a generation bump):

    create_rollout(model_type, stable_release, *, actor, reason) -> Rollout
    set_candidate(rollout, candidate_release, *, actor, reason, percentage=0, shadow_percentage=0,
                  comparison_since=None) -> Rollout
    set_canary_percentage(rollout, percentage, *, actor, reason) -> Rollout
    set_shadow_percentage(rollout, percentage, *, actor, reason) -> Rollout
    promote_candidate(rollout, *, actor, reason, evidence=None) -> Rollout
    rollback_to_previous_stable(rollout, *, actor, reason) -> Rollout
    stop_canary(rollout, *, reason, evidence, actor=None) -> Rollout   (the automated rollback)
    set_auto_promote(rollout, enabled, *, actor, reason) -> Rollout
    pin_person(mlmodel, *, actor, reason) -> ModelPin ; unpin_person(person, model_type, *, actor, reason)
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from mlmodels.models import (
    AUTOMATION_ACTOR,
    GLUCOSE_PREDICTION,
    EventAction,
    MLModel,
    ModelPin,
    ModelStatus,
    Rollout,
    RolloutEvent,
    RetiredSchema,
    RolloutStatus,
    ServingState,
    Variant,
)

BUCKETS = 100
# A model can serve only while its artifacts are stored and it finished training.
SERVABLE_STATUSES = (ModelStatus.READY, ModelStatus.ARCHIVED)
PINNABLE_STATUSES = (ModelStatus.READY, ModelStatus.ARCHIVED, ModelStatus.REJECTED)


class RolloutError(ValueError):
    """A rollout change that cannot be made as asked (the message says why)."""


# --- Deterministic assignment -----------------------------------------------------------------


def bucket(person_id: int, rollout_id: int) -> int:
    """0-99 from SHA-256 of (rollout, person): the same every time, in every process.

    Python's hash() is salted per process and would move people between arms.
    """
    digest = hashlib.sha256(f"glucast-rollout:{int(rollout_id)}:{int(person_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_canary(person_id: int, rollout_id: int, percentage: int) -> bool:
    """Canary iff bucket < percentage: raising 10% to 20% keeps the first 10% in the canary."""
    return bucket(person_id, rollout_id) < int(percentage)


def in_shadow(person_id: int, rollout_id: int, canary_percentage: int, shadow_percentage: int) -> bool:
    """Shadow iff canary <= bucket < canary + shadow: the people next in line for the canary, so
    raising the canary moves people who were compared in shadow into it."""
    b = bucket(person_id, rollout_id)
    return int(canary_percentage) <= b < int(canary_percentage) + int(shadow_percentage)


class Choice(tuple):
    """(MLModel | None, variant) — unpacks like the pair serving expects — plus how it was chosen:
    `arm` ("stable", "canary", "pinned" or "" without a rollout), `rollout_id`, and `shadow`: the
    person's model of the candidate release when they are in the rollout's shadow share."""

    def __new__(cls, mlmodel, variant: str, *, arm: str = "", rollout_id: int | None = None, shadow=None):
        self = super().__new__(cls, (mlmodel, variant))
        self.arm = arm
        self.rollout_id = rollout_id
        self.shadow = shadow
        return self

    @property
    def mlmodel(self):
        return self[0]

    @property
    def variant(self) -> str:
        return self[1]

    def __repr__(self) -> str:
        version = self[0].version if self[0] is not None else None
        return f"Choice({version!r}, {self[1]!r}, arm={self.arm!r}, rollout_id={self.rollout_id!r})"


# --- The per-process configuration, reloaded when the generation moves ------------------------


@dataclass(frozen=True)
class RolloutPlan:
    id: int
    model_type: str
    stable_release: int
    candidate_release: int | None
    canary_percentage: int
    shadow_percentage: int = 0


@dataclass
class ServingConfig:
    token: tuple | None
    rollouts: dict[str, RolloutPlan] = field(default_factory=dict)
    pins: dict[tuple[int, str], int] = field(default_factory=dict)  # (person, type) -> model id
    retired: frozenset = frozenset()  # {(model type, schema version = MAJOR)}


_config: ServingConfig | None = None
_config_lock = threading.Lock()


def generation_token() -> tuple | None:
    """(generation, updated_at) of the ServingState row; one primary-key lookup.

    updated_at is part of the token so a recreated row (e.g. a flushed test database) that
    counts from 0 again never matches a configuration cached before.
    """
    return ServingState.objects.filter(pk=1).values_list("generation", "updated_at").first()


def serving_config(token=...) -> ServingConfig:
    """Rollouts and pins as of the current generation (cached per process until it moves).

    `token`: the generation already read by the caller in the same query as its model rows.
    """
    global _config
    if token is ...:
        token = generation_token()
    config = _config
    if config is not None and config.token == token:
        return config
    rollouts = {
        r.model_type: RolloutPlan(
            r.pk, r.model_type, r.stable_release, r.candidate_release, r.canary_percentage, r.shadow_percentage
        )
        for r in Rollout.objects.all()
    }
    retired = frozenset(RetiredSchema.objects.values_list("model_type", "schema_version"))
    pins = {
        (person_id, model_type): model_id
        for person_id, model_type, model_id in ModelPin.objects.values_list("person_id", "model_type", "ml_model_id")
    }
    config = ServingConfig(token, rollouts, pins, retired)
    with _config_lock:
        _config = config
    return config


def forget_serving_config() -> None:
    global _config
    with _config_lock:
        _config = None


def bump_generation() -> int:
    """Move the serving generation (call inside the transaction that changes serving)."""
    table = ServingState._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (id, generation, updated_at) VALUES (1, 1, clock_timestamp())
            ON CONFLICT (id) DO UPDATE
               SET generation = {table}.generation + 1, updated_at = clock_timestamp()
            RETURNING generation
            """
        )
        return int(cursor.fetchone()[0])


# --- Choosing models --------------------------------------------------------------------------


def usable(mlmodel: MLModel) -> bool:
    return bool(
        mlmodel.status in SERVABLE_STATUSES and mlmodel.storage_path and mlmodel.artifact_sha256
    )


def model_of_release(models_newest_first: list[MLModel], release: int) -> MLModel | None:
    """The active version if it belongs to the release, else the newest usable one of it."""
    of_release = [m for m in models_newest_first if m.version_major == release and usable(m)]
    for mlmodel in of_release:
        if mlmodel.is_active:
            return mlmodel
    return of_release[0] if of_release else None


# Serving never reads these (large) JSON columns; the manifest stays: a cache miss needs it.
_UNREAD_COLUMNS = ("metrics", "comparison", "hyperparameters", "feature_schema", "error")
_rows_sql: tuple[str, list] | None = None


def _serving_rows_sql() -> tuple[str, list]:
    """One fixed statement (built once per process: the ORM would compile it on every forecast,
    which costs more than running it): the generation, LEFT JOINed to the servable versions."""
    global _rows_sql
    if _rows_sql is None:
        fields = [f for f in MLModel._meta.concrete_fields if f.name not in _UNREAD_COLUMNS]
        columns = ", ".join(f'm."{f.column}"' for f in fields)
        sql = f"""
            SELECT s.generation, s.updated_at, {columns}
              FROM (SELECT 1) AS one
              LEFT JOIN "{ServingState._meta.db_table}" s ON s.id = 1
              LEFT JOIN "{MLModel._meta.db_table}" m
                     ON m.person_id = ANY(%s) AND m.model_type = %s AND m.status = ANY(%s)
                    AND m.storage_path <> ''
             ORDER BY m.person_id, m.version_major DESC, m.version_minor DESC, m.version_patch DESC
        """
        _rows_sql = (sql, fields)
    return _rows_sql


def _serving_rows(ids: list[int], model_type: str) -> tuple[tuple | None, list[MLModel]]:
    """(generation token, every version of these people that could serve) in ONE query, so the
    generation and the rows are one snapshot."""
    sql, fields = _serving_rows_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids, model_type, [str(s) for s in PINNABLE_STATUSES]])
        records = cursor.fetchall()
    generation, updated_at = records[0][0], records[0][1]
    token = None if generation is None else (generation, updated_at)
    attnames = [f.attname for f in fields]
    # A raw cursor skips the ORM's converters: apply the fields' own (JSON text -> dict).
    converters = [(i, f.from_db_value) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]
    rows = []
    for record in records:
        if record[2] is None:  # the LEFT JOIN found no version
            continue
        values = list(record[2:])
        for i, convert in converters:
            values[i] = convert(values[i], None, connection)
        rows.append(MLModel.from_db(connection.alias, attnames, values))
    return token, rows


def assign_models(person_ids, model_type: str = GLUCOSE_PREDICTION) -> dict[int, Choice]:
    """{person_id: Choice} for many people, normally with ONE query.

    That query returns every version of these people that could serve (finished, files stored)
    with the serving generation alongside, so the generation and the rows are one snapshot; the
    rollout and pin configuration comes from the per-process cache unless the generation moved.
    """
    ids = [int(pid) for pid in person_ids]
    if not ids:
        return {}
    token, rows = _serving_rows(ids, model_type)
    config = serving_config(token)
    plan = config.rollouts.get(model_type)
    pinned = {pid: config.pins[(pid, model_type)] for pid in ids if (pid, model_type) in config.pins}

    by_person: dict[int, list[MLModel]] = {}
    by_id: dict[int, MLModel] = {}
    for mlmodel in rows:
        by_person.setdefault(mlmodel.person_id, []).append(mlmodel)
        by_id[mlmodel.pk] = mlmodel

    if config.retired:
        rows = [m for m in rows if (model_type, m.version_major) not in config.retired]
        by_person = {pid: [m for m in ms if (model_type, m.version_major) not in config.retired]
                     for pid, ms in by_person.items()}
    choices: dict[int, Choice] = {}
    for pid in ids:
        models = by_person.get(pid, [])
        pin = by_id.get(pinned.get(pid, -1))
        if pin is not None and pin.person_id == pid and pin.status in PINNABLE_STATUSES:
            choices[pid] = Choice(pin, Variant.STABLE, arm="pinned")
            continue
        if plan is None:
            active = next((m for m in models if m.is_active and m.status == ModelStatus.READY), None)
            choices[pid] = Choice(active, Variant.STABLE if active else Variant.BASELINE)
            continue
        if plan.candidate_release is not None and in_canary(pid, plan.id, plan.canary_percentage):
            candidate = model_of_release(models, plan.candidate_release)
            if candidate is not None:
                choices[pid] = Choice(candidate, Variant.CANARY, arm="canary", rollout_id=plan.id)
                continue
        stable = model_of_release(models, plan.stable_release)
        shadow = None
        if plan.candidate_release is not None and plan.shadow_percentage and in_shadow(
            pid, plan.id, plan.canary_percentage, plan.shadow_percentage
        ):
            shadow = model_of_release(models, plan.candidate_release)
        choices[pid] = Choice(
            stable, Variant.STABLE if stable else Variant.BASELINE, arm="stable", rollout_id=plan.id,
            shadow=shadow,
        )
    return choices


# --- Changing rollouts ------------------------------------------------------------------------


def actor_fields(actor) -> dict:
    """A staff user, a name (e.g. "cli:alice" from the management command), or None = automation."""
    if actor is None:
        return {"actor": None, "actor_name": AUTOMATION_ACTOR}
    if isinstance(actor, str):
        return {"actor": None, "actor_name": actor[:150]}
    return {"actor": actor, "actor_name": actor.get_username()}


def _user_or_none(actor):
    return None if actor is None or isinstance(actor, str) else actor


def require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RolloutError("A reason is required: it is kept in the rollout's history.")
    return reason


def _status_for(rollout: Rollout) -> str:
    if rollout.candidate_release is None:
        return RolloutStatus.STABLE
    if rollout.canary_percentage > 0:
        return RolloutStatus.CANARY
    return RolloutStatus.SHADOW if rollout.shadow_percentage > 0 else RolloutStatus.PAUSED


def _record(rollout: Rollout | None, action: str, *, actor, reason: str, before: dict, after: dict,
            evidence: dict | None = None, person=None, ml_model=None, model_type: str | None = None):
    return RolloutEvent.objects.create(
        rollout=rollout,
        model_type=model_type or (rollout.model_type if rollout else GLUCOSE_PREDICTION),
        action=action,
        reason=reason,
        before=before,
        after=after,
        evidence=evidence or {},
        person=person,
        ml_model=ml_model,
        **actor_fields(actor),
    )


def _locked(rollout: Rollout | int) -> Rollout:
    pk = rollout.pk if isinstance(rollout, Rollout) else int(rollout)
    return Rollout.objects.select_for_update().get(pk=pk)


def _save_change(rollout: Rollout, action: str, *, actor, reason: str, before: dict,
                 evidence: dict | None = None) -> Rollout:
    rollout.save()
    _record(rollout, action, actor=actor, reason=reason, before=before, after=rollout.snapshot(),
            evidence=evidence)
    bump_generation()
    return rollout


def _check_release(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RolloutError(f"{name} must be a whole number >= 0 (the MAJOR of the model versions).")
    return value


def _check_percentage(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise RolloutError("The canary percentage must be a whole number from 0 to 100.")
    return value


def _check_not_retired(model_type: str, release: int | None) -> None:
    if release is not None and RetiredSchema.objects.filter(model_type=model_type, schema_version=release).exists():
        raise RolloutError(f"Release {release} of {model_type} was retired; it cannot serve again.")


def create_rollout(model_type: str, stable_release: int, *, actor, reason: str) -> Rollout:
    reason = require_reason(reason)
    _check_release(stable_release, "The stable release")
    _check_not_retired(model_type, stable_release)
    with transaction.atomic():
        if Rollout.objects.filter(model_type=model_type).exists():
            raise RolloutError(f"{model_type} already has a rollout; change that one instead.")
        rollout = Rollout.objects.create(
            model_type=model_type, stable_release=stable_release, status=RolloutStatus.STABLE
        )
        _record(rollout, EventAction.CREATED, actor=actor, reason=reason, before={}, after=rollout.snapshot())
        bump_generation()
    return rollout


def set_candidate(rollout, candidate_release: int | None, *, actor, reason: str, percentage: int = 0,
                  shadow_percentage: int = 0, comparison_since=None) -> Rollout:
    """Name the release to try (None clears it) and start a new comparison between the arms.

    `comparison_since`: where the comparison starts, default now. Only a replay of past origins
    (config/demo_rollout.py) passes an earlier moment (its first origin), so the rollout page
    and the automated decisions count the forecasts it logs at those origins."""
    reason = require_reason(reason)
    if comparison_since is not None and (timezone.is_naive(comparison_since) or comparison_since > timezone.now()):
        raise RolloutError("The comparison can start now or at an earlier moment (with a time zone), not later.")
    if candidate_release is not None:
        _check_release(candidate_release, "The candidate release")
    _check_percentage(percentage)
    _check_percentage(shadow_percentage)
    with transaction.atomic():
        rollout = _locked(rollout)
        _check_not_retired(rollout.model_type, candidate_release)
        before = rollout.snapshot()
        if candidate_release is not None and candidate_release == rollout.stable_release:
            raise RolloutError("The candidate release must differ from the stable release.")
        if candidate_release is None and (percentage or shadow_percentage):
            raise RolloutError("Without a candidate release the canary and shadow percentages stay 0.")
        rollout.candidate_release = candidate_release
        rollout.canary_percentage = percentage if candidate_release is not None else 0
        rollout.shadow_percentage = shadow_percentage if candidate_release is not None else 0
        rollout.candidate_since = (comparison_since or timezone.now()) if candidate_release is not None else None
        rollout.status = _status_for(rollout)
        rollout.status_reason = reason
        return _save_change(rollout, EventAction.CANDIDATE_SET, actor=actor, reason=reason, before=before)


def set_canary_percentage(rollout, percentage: int, *, actor, reason: str) -> Rollout:
    reason = require_reason(reason)
    _check_percentage(percentage)
    with transaction.atomic():
        rollout = _locked(rollout)
        before = rollout.snapshot()
        if rollout.candidate_release is None and percentage:
            raise RolloutError("Set a candidate release before giving it a canary percentage.")
        rollout.canary_percentage = percentage
        rollout.status = _status_for(rollout)
        rollout.status_reason = reason
        return _save_change(rollout, EventAction.PERCENTAGE_SET, actor=actor, reason=reason, before=before)


def set_shadow_percentage(rollout, percentage: int, *, actor, reason: str) -> Rollout:
    """Run the candidate in shadow for the next `percentage` buckets after the canary: computed
    after each answer, logged and scored against the same outcomes, never shown."""
    reason = require_reason(reason)
    _check_percentage(percentage)
    with transaction.atomic():
        rollout = _locked(rollout)
        before = rollout.snapshot()
        if rollout.candidate_release is None and percentage:
            raise RolloutError("Set a candidate release before running it in shadow.")
        if percentage and rollout.candidate_since is None:
            rollout.candidate_since = timezone.now()
        rollout.shadow_percentage = percentage
        rollout.status = _status_for(rollout)
        rollout.status_reason = reason
        return _save_change(rollout, EventAction.SHADOW_SET, actor=actor, reason=reason, before=before)


def promote_candidate(rollout, *, actor, reason: str, evidence: dict | None = None) -> Rollout:
    """The candidate becomes the stable release for everyone; the old stable is kept as previous."""
    reason = require_reason(reason)
    with transaction.atomic():
        rollout = _locked(rollout)
        before = rollout.snapshot()
        if rollout.candidate_release is None:
            raise RolloutError("There is no candidate release to promote.")
        rollout.previous_stable_release = rollout.stable_release
        rollout.stable_release = rollout.candidate_release
        rollout.candidate_release = None
        rollout.canary_percentage = 0
        rollout.shadow_percentage = 0
        rollout.candidate_since = None
        rollout.status = RolloutStatus.STABLE
        rollout.status_reason = reason
        action = EventAction.PROMOTED if actor is not None else EventAction.AUTO_PROMOTED
        return _save_change(rollout, action, actor=actor, reason=reason, before=before, evidence=evidence)


def rollback_to_previous_stable(rollout, *, actor, reason: str) -> Rollout:
    """Serve the previous stable release again; the demoted release stays as a 0% candidate."""
    reason = require_reason(reason)
    with transaction.atomic():
        rollout = _locked(rollout)
        before = rollout.snapshot()
        if rollout.previous_stable_release is None:
            raise RolloutError("There is no previous stable release to roll back to.")
        demoted = rollout.stable_release
        rollout.stable_release = rollout.previous_stable_release
        rollout.previous_stable_release = None
        rollout.candidate_release = demoted
        rollout.canary_percentage = 0
        rollout.shadow_percentage = 0
        rollout.candidate_since = timezone.now()
        rollout.status = RolloutStatus.ROLLED_BACK
        rollout.status_reason = reason
        return _save_change(rollout, EventAction.ROLLED_BACK, actor=actor, reason=reason, before=before)


def stop_canary(rollout, *, reason: str, evidence: dict | None = None, actor=None) -> Rollout:
    """Set the canary (and any shadow run) to 0% and say why (the automated rollback; staff use
    it too)."""
    reason = require_reason(reason)
    with transaction.atomic():
        rollout = _locked(rollout)
        before = rollout.snapshot()
        rollout.canary_percentage = 0
        rollout.shadow_percentage = 0
        rollout.status = RolloutStatus.ROLLED_BACK
        rollout.status_reason = reason
        action = EventAction.AUTO_ROLLED_BACK if actor is None else EventAction.PERCENTAGE_SET
        return _save_change(rollout, action, actor=actor, reason=reason, before=before, evidence=evidence)


def set_auto_promote(rollout, enabled: bool, *, actor, reason: str) -> Rollout:
    reason = require_reason(reason)
    with transaction.atomic():
        rollout = _locked(rollout)
        before = rollout.snapshot()
        rollout.auto_promote = bool(enabled)
        return _save_change(rollout, EventAction.AUTO_PROMOTE_SET, actor=actor, reason=reason, before=before)


# --- Pins -------------------------------------------------------------------------------------


def pin_person(mlmodel: MLModel, *, actor, reason: str) -> ModelPin:
    """Serve this version to its person whatever the rollout says (replaces an earlier pin)."""
    reason = require_reason(reason)
    if mlmodel.status not in PINNABLE_STATUSES or not mlmodel.storage_path:
        raise RolloutError(
            f"Version {mlmodel.version} cannot serve (status {mlmodel.status}"
            f"{', artifacts removed' if not mlmodel.storage_path else ''})."
        )
    with transaction.atomic():
        existing = (
            ModelPin.objects.select_for_update()
            .filter(person_id=mlmodel.person_id, model_type=mlmodel.model_type).first()
        )
        before = {"ml_model": existing.ml_model_id, "version": existing.ml_model.version} if existing else {}
        if existing is None:
            pin = ModelPin.objects.create(
                person_id=mlmodel.person_id, model_type=mlmodel.model_type, ml_model=mlmodel,
                reason=reason, created_by=_user_or_none(actor),
            )
        else:
            existing.ml_model = mlmodel
            existing.reason = reason
            existing.created_by = _user_or_none(actor)
            existing.save()
            pin = existing
        _record(
            None, EventAction.PINNED, actor=actor, reason=reason, before=before,
            after={"ml_model": mlmodel.pk, "version": mlmodel.version},
            person=mlmodel.person, ml_model=mlmodel, model_type=mlmodel.model_type,
        )
        bump_generation()
    return pin


def unpin_person(person, model_type: str = GLUCOSE_PREDICTION, *, actor, reason: str) -> bool:
    reason = require_reason(reason)
    with transaction.atomic():
        pin = ModelPin.objects.select_for_update().filter(person=person, model_type=model_type).first()
        if pin is None:
            return False
        before = {"ml_model": pin.ml_model_id, "version": pin.ml_model.version}
        pin.delete()
        _record(None, EventAction.UNPINNED, actor=actor, reason=reason, before=before, after={},
                person=person, model_type=model_type)
        bump_generation()
    return True


# --- What exists to choose from (the admin's choice fields) ------------------------------------


def model_types() -> list[str]:
    """The model types a rollout can be made for: glucose prediction and any type with versions."""
    stored = MLModel.objects.order_by().values_list("model_type", flat=True).distinct()
    return sorted({GLUCOSE_PREDICTION, *stored})


def release_choices(model_type: str | None = None) -> list[tuple[int, str]]:
    """(release, label) for every release that exists: a schema the running code can build
    (mlmodels/core/schemas.py) or a MAJOR with stored versions — never a retired one."""
    from mlmodels.core.schemas import REGISTRY

    rows = MLModel.objects.filter(status__in=SERVABLE_STATUSES).exclude(storage_path="")
    if model_type:
        rows = rows.filter(model_type=model_type)
    counts: dict[int, int] = {}
    for major, n in rows.order_by().values_list("version_major").annotate(n=Count("person", distinct=True)):
        counts[int(major)] = int(n)
    retired = set(RetiredSchema.objects.filter(**({"model_type": model_type} if model_type else {}))
                  .values_list("schema_version", flat=True))
    out = []
    for release in sorted(set(REGISTRY) | set(counts)):
        if release in retired:
            continue
        known = "" if release in REGISTRY else " — this code cannot build its features"
        out.append((release, f"release {release} ({counts.get(release, 0)} people have a version){known}"))
    return out
