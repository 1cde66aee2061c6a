"""Staff screens of what was served and how it turned out: the prediction log, realized
performance, and the model registry's screens with the figures judged from outcomes — realized
MAE per version, the live stable-vs-canary comparison on every rollout button, and the monitoring
page (/admin/mlmodels/rollout/monitoring/: per release and arm over time).

The registry's screens themselves (actions, buttons, forms) are mlmodels/admin.py; they are
registered here, as subclasses, because the outcomes they show are this app's.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import F, FloatField, OuterRef, Subquery
from django.db.models.functions import Cast
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from mlmodels.admin import MLModelAdmin, RolloutAdmin
from mlmodels.models import MLModel, Rollout
from persons.admin import ReadOnlyAdmin
from predictions.models import BatchChunk, ModelPerformance, PredictionLog
from predictions.monitoring import arm_comparison, monitoring_overview
from predictions.serving_now import serving_now
from predictions.shadow import paired_comparison


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "person", "issued_at", "as_of", "model_version", "variant", "arm", "algorithm",
                    "source", "unit", "latency_ms", "fallback_reason", "outcome_pending"]
    list_filter = ["variant", "arm", "rollout", "source", "from_history", "outcome_pending", "algorithm"]
    search_fields = ["person__display_name", "person__owner__username", "model_version", "fallback_reason"]
    date_hierarchy = "issued_at"
    list_select_related = ["person"]
    raw_id_fields = ["person", "ml_model"]


@admin.register(BatchChunk)
class BatchChunkAdmin(ReadOnlyAdmin):
    """Claim rows of the sharded 5-minute work: which chunks ran, were skipped or still wait."""

    list_display = ["cycle_at", "kind", "slot", "chunk_size", "status", "started_at", "finished_at", "result"]
    list_filter = ["kind", "status"]
    date_hierarchy = "cycle_at"


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


# --- The comparison table ---------------------------------------------------------------------


def _fmt(value, pattern="{:.1f}"):
    return "–" if value is None else pattern.format(value)


def paired_html(paired: dict | None):
    """The shadow run's paired comparison: same person, origin and outcome for both releases."""
    if not paired or not paired["n_pairs"]:
        return mark_safe("<p><strong>Paired (shadow) comparison:</strong> no paired outcomes yet.</p>")
    rel, interval = paired["relative_difference"], paired["relative_interval"]
    rows = format_html_join(
        "", "<tr><th>{} min</th><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td></tr>",
        ((h, f["n_pairs"], _fmt(f["mae_served"]), _fmt(f["mae_candidate"]),
          _fmt(f["coverage_80_served"], "{:.0%}"), _fmt(f["coverage_80_candidate"], "{:.0%}"))
         for h, f in paired["horizons"].items()),
    )
    evidence = (
        format_html('<span style="color:#1a7f37">✔ enough evidence — the automated decisions use this</span>')
        if paired["enough_evidence"] else format_html(
            '<strong style="color:#9a6700">⚠ Not enough evidence yet</strong> ({} of {} paired points from {} of {} people)',
            paired["n_pairs"], paired["min_outcomes"], paired["n_people"], paired["min_people"])
    )
    return format_html(
        "<h4>Paired (shadow) comparison — release {} against what was served, same origins and outcomes</h4>"
        '<table class="lifecycle-paired"><thead><tr><th>horizon</th><th>pairs</th><th>served MAE</th>'
        "<th>candidate MAE</th><th>inside 80% (served / candidate)</th></tr></thead><tbody>{}</tbody></table>"
        "<p>Paired MAE difference (candidate − served, 30+60 min): <strong>{} mg/dL ({})</strong>, 95% bootstrap "
        "interval over people {} mg/dL ({}); shadow forecasts {} of which {} failed. {}</p>",
        paired["candidate_release"], rows, _fmt(paired["difference"], "{:+.2f}"), _fmt(rel, "{:+.1%}"),
        "–" if paired["difference_interval"] is None else
        f"{paired['difference_interval'][0]:+.2f} to {paired['difference_interval'][1]:+.2f}",
        "–" if interval is None else f"{interval[0]:+.1%} to {interval[1]:+.1%}",
        paired["n_shadow_forecasts"], paired["n_shadow_errors"], evidence,
    )


def comparison_html(comparison: dict, paired: dict | None = None):
    return format_html("{}{}", arm_table_html(comparison), paired_html(paired))


def arm_table_html(comparison: dict):
    arms = comparison["arms"]
    rows = [
        ("Release", lambda a: _fmt(a["release"], "{}")),
        ("Forecasts served", lambda a: str(a["n_forecasts"])),
        ("People", lambda a: str(a["n_people"])),
        ("Matched outcomes (30+60 min)", lambda a: f"{a['n_matched']} from {a['n_people_matched']} people"),
        ("Realized MAE 30 min (mg/dL)", lambda a: _fmt(a["horizons"].get("30", {}).get("mae_mg_dl"))),
        ("Realized MAE 60 min (mg/dL)", lambda a: _fmt(a["horizons"].get("60", {}).get("mae_mg_dl"))),
        ("Realized RMSE 30 min (mg/dL)", lambda a: _fmt(a["horizons"].get("30", {}).get("rmse_mg_dl"))),
        ("Realized RMSE 60 min (mg/dL)", lambda a: _fmt(a["horizons"].get("60", {}).get("rmse_mg_dl"))),
        ("Inside 80% range (30 / 60 min)", lambda a: " / ".join(
            _fmt(a["horizons"].get(h, {}).get("coverage_80"), "{:.0%}") for h in ("30", "60"))),
        ("Inside 95% range (30 / 60 min)", lambda a: " / ".join(
            _fmt(a["horizons"].get(h, {}).get("coverage_95"), "{:.0%}") for h in ("30", "60"))),
        ("Latency p95 (ms, API)", lambda a: _fmt(a["latency_p95_ms"])),
        ("Error rate", lambda a: _fmt(a["error_rate"], "{:.1%}")),
        ("Fallback rate", lambda a: _fmt(a["fallback_rate"], "{:.1%}")),
        ("Feedback helpful / not", lambda a: f"{a['feedback_helpful']} / {a['feedback_not_helpful']}"),
    ]
    body = format_html_join(
        "", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
        ((label, get(arms["stable"]), get(arms["canary"])) for label, get in rows),
    )

    def evidence(arm):
        if arm["enough_evidence"]:
            return format_html('<span style="color:#1a7f37">✔ enough evidence</span>')
        return format_html(
            '<strong style="color:#9a6700">⚠ Not enough evidence yet</strong> '
            "({} of {} matched outcomes from {} of {} people)",
            arm["n_matched"], comparison["min_outcomes"], arm["n_people_matched"], comparison["min_people"],
        )

    delta = comparison.get("canary_vs_stable_mae")
    return format_html(
        '<table class="lifecycle-comparison"><thead><tr><th>since {}</th><th>stable</th><th>canary</th></tr>'
        "</thead><tbody>{}<tr><th>Evidence</th><td>{}</td><td>{}</td></tr></tbody></table>"
        "<p>Canary MAE against stable: {}{}</p>",
        comparison["since"][:16].replace("T", " "), body, evidence(arms["stable"]), evidence(arms["canary"]),
        _fmt(delta, "{:+.1%}"),
        "" if comparison["enough_evidence"] else " — not enough evidence yet to tell the arms apart.",
    )


# --- The registry's screens, with outcomes ------------------------------------------------------


def realized_mae_of_version(horizon: int):
    """Subquery: a version's realized MAE at `horizon` from its running sums (None before any)."""
    rows = ModelPerformance.objects.filter(ml_model=OuterRef("pk"), horizon_min=horizon, n_matched__gt=0)
    return Subquery(
        rows.annotate(mae=Cast(F("sum_abs_error"), FloatField()) / Cast(F("n_matched"), FloatField()))
        .values("mae")[:1],
        output_field=FloatField(),
    )


@admin.register(MLModel)
class MLModelWithOutcomesAdmin(MLModelAdmin):
    list_display = [
        *MLModelAdmin.list_display[: MLModelAdmin.list_display.index("artifact_link")],
        "realized_mae_30", "realized_mae_60", "artifact_link",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            realized_mae_30_value=realized_mae_of_version(30), realized_mae_60_value=realized_mae_of_version(60)
        )

    @admin.display(description="realized MAE 30 min", ordering="realized_mae_30_value")
    def realized_mae_30(self, obj):
        return _fmt(getattr(obj, "realized_mae_30_value", None))

    @admin.display(description="realized MAE 60 min", ordering="realized_mae_60_value")
    def realized_mae_60(self, obj):
        return _fmt(getattr(obj, "realized_mae_60_value", None))


@admin.register(Rollout)
class RolloutWithOutcomesAdmin(RolloutAdmin):
    readonly_fields = [*RolloutAdmin.readonly_fields, "live_comparison"]
    change_form_template = "admin/predictions/rollout_change_form.html"
    change_list_template = "admin/predictions/rollout_change_list.html"

    @admin.display(description="stable vs canary (from the prediction log)")
    def live_comparison(self, obj):
        if obj is None or obj.pk is None:
            return "–"
        if obj.candidate_release is None:
            return "No candidate release: only the stable release serves."
        return comparison_html(arm_comparison(obj), paired_comparison(obj))

    def comparison_for(self, rollout):
        return comparison_html(arm_comparison(rollout), paired_comparison(rollout))

    def get_urls(self):
        monitoring = self.admin_site.admin_view(self.monitoring_view)
        now = self.admin_site.admin_view(self.serving_now_view)
        return [
            path("monitoring/", monitoring, name="mlmodels_rollout_monitoring"),
            path("serving-now/", now, name="mlmodels_rollout_serving_now"),
        ] + super().get_urls()

    def serving_now_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Serving now",
            "opts": self.model._meta,
            "now": serving_now(),
        }
        return TemplateResponse(request, "admin/predictions/serving_now.html", context)

    def monitoring_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = min(max(int(request.GET.get("days", 7)), 1), 90)
        except ValueError:
            days = 7
        bucket = "hour" if request.GET.get("bucket") == "hour" else "day"
        context = {
            **self.admin_site.each_context(request),
            "title": "Model serving and training",
            "opts": self.model._meta,
            "overview": monitoring_overview(days=days, bucket=bucket),
            "days": days,
            "bucket": bucket,
            "rollouts": [(r, (arm_comparison(r), paired_comparison(r)) if r.candidate_release is not None else None)
                         for r in Rollout.objects.all()],
        }
        for row in context["overview"]["serving"]:
            row["mae_cells"] = [
                (h, "–" if row["mae"].get(str(h)) is None
                 else f'{row["mae"][str(h)]:.1f} ({row["n_matched"][str(h)]})')
                for h in context["overview"]["horizons"]
            ]
        for rollout, comparison in context["rollouts"]:
            rollout.comparison_html = comparison_html(*comparison) if comparison else None
        return TemplateResponse(request, "admin/predictions/rollout_monitoring.html", context)
