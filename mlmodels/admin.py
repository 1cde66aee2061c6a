"""Operator views of the model registry. Kept plain so later actions (promote, rollback) can be
added to MLModelAdmin.actions without restructuring."""

from django.contrib import admin

from mlmodels.models import MLModel, TrainingJob, metric_value


def _mae_column(horizon_min: int, *, baseline: bool = False):
    def column(_admin, obj):
        value = metric_value(obj.metrics, horizon_min, "mae", baseline=baseline)
        return "–" if value is None else f"{value:.1f}"

    who = "baseline " if baseline else ""
    column.short_description = f"{who}MAE {horizon_min} min"
    return column


def _vs_baseline(horizon_min: int):
    def column(_admin, obj):
        model = metric_value(obj.metrics, horizon_min, "mae")
        base = metric_value(obj.metrics, horizon_min, "mae", baseline=True)
        if model is None or not base:
            return "–"
        return f"{(model - base) / base:+.0%}"

    column.short_description = f"vs baseline {horizon_min} min"
    return column


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = [
        "person", "model_type", "version", "algorithm", "status", "is_active", "trained_at",
        "mae_30", "mae_60", "baseline_mae_60", "vs_baseline_60", "n_readings",
    ]
    list_filter = ["model_type", "status", "is_active", "algorithm"]
    search_fields = ["person__display_name", "person__owner__username", "version", "algorithm"]
    list_select_related = ["person"]
    raw_id_fields = ["person", "parent"]
    date_hierarchy = "trained_at"
    ordering = ["person", "-version_major", "-version_minor", "-version_patch"]
    readonly_fields = [
        "version", "version_major", "version_minor", "version_patch", "storage_path",
        "artifact_sha256", "artifact_manifest", "metrics", "comparison", "hyperparameters",
        "feature_schema", "trained_at", "data_start", "data_end", "n_readings", "created_at",
    ]
    actions: list = []

    mae_30 = _mae_column(30)
    mae_60 = _mae_column(60)
    baseline_mae_60 = _mae_column(60, baseline=True)
    vs_baseline_60 = _vs_baseline(60)


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = [
        "id", "person", "model_type", "status", "reason", "trigger", "attempts", "model",
        "created_at", "started_at", "finished_at",
    ]
    list_filter = ["status", "trigger", "model_type", "reason"]
    search_fields = ["person__display_name", "person__owner__username", "task_id", "reason"]
    list_select_related = ["person", "model"]
    raw_id_fields = ["person", "model"]
    date_hierarchy = "created_at"
    readonly_fields = ["task_id", "attempts", "detail", "error", "created_at", "started_at", "finished_at"]


# The lifecycle screens (rollouts, pins, events, model actions, monitoring) extend this admin.
from mlmodels import lifecycle_admin  # noqa: E402,F401
