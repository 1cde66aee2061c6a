from django.contrib import admin

from persons.admin import ReadOnlyAdmin
from predictions.models import ModelPerformance, PredictionLog


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "person", "issued_at", "as_of", "model_version", "variant", "arm", "algorithm",
                    "source", "unit", "latency_ms", "fallback_reason", "outcome_pending"]
    list_filter = ["variant", "arm", "rollout", "source", "from_history", "outcome_pending", "algorithm"]
    search_fields = ["person__display_name", "person__owner__username", "model_version", "fallback_reason"]
    date_hierarchy = "issued_at"
    list_select_related = ["person"]
    raw_id_fields = ["person", "ml_model"]


@admin.register(ModelPerformance)
class ModelPerformanceAdmin(ReadOnlyAdmin):
    list_display = ["person", "model_version", "horizon_min", "n_matched", "mae", "rmse",
                    "coverage_80_pct", "coverage_95_pct", "updated_at"]
    list_filter = ["horizon_min"]
    search_fields = ["person__display_name", "person__owner__username", "model_version"]
    list_select_related = ["person"]
    raw_id_fields = ["person", "ml_model"]

    @admin.display(description="MAE (mg/dL)")
    def mae(self, obj):
        return None if obj.mae_mg_dl is None else round(obj.mae_mg_dl, 1)

    @admin.display(description="RMSE (mg/dL)")
    def rmse(self, obj):
        return None if obj.rmse_mg_dl is None else round(obj.rmse_mg_dl, 1)

    @admin.display(description="inside 80% range")
    def coverage_80_pct(self, obj):
        return None if obj.coverage_80 is None else f"{100 * obj.coverage_80:.0f}%"

    @admin.display(description="inside 95% range")
    def coverage_95_pct(self, obj):
        return None if obj.coverage_95 is None else f"{100 * obj.coverage_95:.0f}%"
