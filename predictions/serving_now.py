"""What serves whom right now, on one screen for staff (admin "Serving now" page).

    serving_now(model_type="glucose-prediction") -> dict

Computed with the same assignment every forecast uses (mlmodels.rollouts.assign_models, one
query for everyone), so the page cannot disagree with what people are answered: per release and
arm, how many people and which variant answers them; the rollout with its arms and shares; the
shadow run with its backlog and the last 24 h of shadow forecasts; pins; retired schemas.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from mlmodels.core.schemas import REGISTRY
from mlmodels.models import GLUCOSE_PREDICTION, MLModel, ModelPin, RetiredSchema, Rollout
from persons.models import Person
from predictions.models import PredictionLog, Source
from predictions.selection import choose_models
from predictions.services import population_forecaster


def serving_now(model_type: str = GLUCOSE_PREDICTION, *, now=None) -> dict:
    now = now or timezone.now()
    person_ids = list(Person.objects.order_by("pk").values_list("pk", flat=True))
    choices = choose_models(person_ids, model_type)
    served = Counter()
    shadowed = Counter()
    # Without a usable personal model the population prior answers (AR2 where it cannot load).
    no_model = "population" if population_forecaster() is not None else "baseline"
    for choice in choices.values():
        model = choice.mlmodel
        release = f"release {model.version_major}" if model is not None else "no personal model"
        served[(release, choice.arm or "–", choice.variant if model is not None else no_model)] += 1
        if choice.shadow is not None:
            shadowed[f"release {choice.shadow.version_major}"] += 1
    rows = [
        {"release": release, "arm": arm, "variant": variant, "people": n}
        for (release, arm, variant), n in sorted(served.items())
    ]
    versions = (
        MLModel.objects.filter(model_type=model_type).exclude(storage_path="")
        .values("version_major")
        .annotate(people=Count("person", distinct=True), versions=Count("id"),
                  active=Count("id", filter=Q(is_active=True)),
                  patches=Count("id", filter=Q(version_patch__gt=0)))
        .order_by("version_major")
    )
    retired = {r.schema_version: r for r in RetiredSchema.objects.filter(model_type=model_type)}
    releases = [
        {**v, "code_can_serve": v["version_major"] in REGISTRY, "retired": retired.get(v["version_major"])}
        for v in versions
    ]
    rollout = Rollout.objects.filter(model_type=model_type).first()
    since = now - timedelta(hours=24)
    shadow_logs = PredictionLog.objects.filter(source=Source.SHADOW, issued_at__gte=since, model_type=model_type)
    shadow = {
        "people": sum(shadowed.values()),
        "by_release": dict(shadowed),
        "pending": PredictionLog.objects.filter(shadow_pending=True).count(),
        "forecasts_24h": shadow_logs.count(),
        "failed_24h": shadow_logs.exclude(fallback_reason="").count(),
    }
    pins = list(ModelPin.objects.filter(model_type=model_type).select_related("person", "ml_model", "created_by"))
    return {
        "model_type": model_type,
        "n_people": len(person_ids),
        "rows": rows,
        "releases": releases,
        "rollout": rollout,
        "shadow": shadow,
        "pins": pins,
        "retired": list(retired.values()),
        "schemas_in_code": sorted(REGISTRY),
    }
