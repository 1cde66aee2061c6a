"""Staff screens of the model lifecycle (loaded from the end of mlmodels/admin.py).

- Rollouts: create one per model type; change it only through the buttons (set candidate, set
  canary percentage, promote, roll back, automatic promotion), each asking for a reason and
  recording a RolloutEvent; the change page shows the live stable-vs-canary comparison.
- Models: the registry's list plus a release filter, realized MAE columns, actions (activate,
  roll back to the previous version, archive, pin the person) that ask for a reason, and a
  short-lived signed artifact link.
- Monitoring: /admin/mlmodels/rollout/monitoring/ (per release and arm over time).
Every view here goes through admin_site.admin_view: staff only, others are sent to the login.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import F, FloatField, OuterRef, Subquery
from django.db.models.functions import Cast
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from persons.admin import ReadOnlyAdmin
from mlmodels.admin import MLModelAdmin
from mlmodels.lifecycle import activate_model, archive_model, rollback_person_model
from mlmodels.lifecycle_models import ModelPin, Rollout, RolloutEvent
from mlmodels.models import MLModel
from mlmodels.monitoring import arm_comparison, monitoring_overview
from mlmodels.rollouts import (
    RolloutError,
    create_rollout,
    pin_person,
    promote_candidate,
    rollback_to_previous_stable,
    set_auto_promote,
    set_candidate,
    set_canary_percentage,
    unpin_person,
)

REASON_HELP = "Why: kept in the history with your name."


# --- Forms ------------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=REASON_HELP)


class PercentageForm(ReasonForm):
    percentage = forms.IntegerField(
        min_value=0, max_value=100,
        help_text="People whose bucket (0-99) is below this number are served the candidate.",
    )
    field_order = ["percentage", "reason"]


class CandidateForm(ReasonForm):
    candidate_release = forms.IntegerField(
        min_value=0, required=False, help_text="MAJOR version to try; empty clears the candidate."
    )
    percentage = forms.IntegerField(min_value=0, max_value=100, initial=0)
    field_order = ["candidate_release", "percentage", "reason"]


class AutoPromoteForm(ReasonForm):
    enabled = forms.BooleanField(required=False, label="Promote automatically when better")
    field_order = ["enabled", "reason"]


class RolloutAddForm(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text=REASON_HELP)

    class Meta:
        model = Rollout
        fields = ["model_type", "stable_release"]


class ReasonActionForm(ActionForm):
    reason = forms.CharField(required=False, help_text=REASON_HELP, widget=forms.TextInput(attrs={"size": 50}))


# --- The comparison table ---------------------------------------------------------------------


def _fmt(value, pattern="{:.1f}"):
    return "–" if value is None else pattern.format(value)


def comparison_html(comparison: dict):
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


# --- Rollouts ---------------------------------------------------------------------------------


class RolloutEventInline(admin.TabularInline):
    model = RolloutEvent
    fk_name = "rollout"
    extra = 0
    can_delete = False
    fields = ["created_at", "actor_name", "action", "reason", "before", "after"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    list_display = [
        "model_type", "stable_release", "candidate_release", "canary_percentage", "status",
        "status_reason_short", "auto_promote", "updated_at",
    ]
    readonly_fields = [
        "model_type", "stable_release", "candidate_release", "canary_percentage",
        "previous_stable_release", "status", "status_reason", "auto_promote", "candidate_since",
        "created_at", "updated_at", "live_comparison",
    ]
    inlines = [RolloutEventInline]
    change_form_template = "admin/mlmodels/rollout/change_form.html"
    change_list_template = "admin/mlmodels/rollout/change_list.html"

    @admin.display(description="why")
    def status_reason_short(self, obj):
        return (obj.status_reason[:80] + "…") if len(obj.status_reason) > 80 else obj.status_reason

    @admin.display(description="stable vs canary (from the prediction log)")
    def live_comparison(self, obj):
        if obj is None or obj.pk is None:
            return "–"
        if obj.candidate_release is None:
            return "No candidate release: only the stable release serves."
        return comparison_html(arm_comparison(obj))

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = RolloutAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["model_type", "stable_release", "reason"]
        return self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:  # every change goes through the buttons, which record why
            raise PermissionDenied
        try:
            created = create_rollout(
                form.cleaned_data["model_type"], form.cleaned_data["stable_release"],
                actor=request.user, reason=form.cleaned_data["reason"],
            )
        except RolloutError as exc:
            raise PermissionDenied(str(exc)) from exc
        obj.pk = created.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        def wrap(view):
            return self.admin_site.admin_view(view)

        return [
            path("monitoring/", wrap(self.monitoring_view), name="mlmodels_rollout_monitoring"),
            path("<int:pk>/candidate/", wrap(self.candidate_view), name="mlmodels_rollout_candidate"),
            path("<int:pk>/percentage/", wrap(self.percentage_view), name="mlmodels_rollout_percentage"),
            path("<int:pk>/promote/", wrap(self.promote_view), name="mlmodels_rollout_promote"),
            path("<int:pk>/rollback/", wrap(self.rollback_view), name="mlmodels_rollout_rollback"),
            path("<int:pk>/auto-promote/", wrap(self.auto_promote_view), name="mlmodels_rollout_auto_promote"),
        ] + super().get_urls()

    # Each button: a form with a reason; the service validates, records and bumps the generation.

    def _action(self, request, pk, form_class, title, apply, *, initial=None, explanation=""):
        rollout = get_object_or_404(Rollout, pk=pk)
        if not self.has_change_permission(request, rollout):
            raise PermissionDenied
        form = form_class(request.POST or None, initial=initial or {})
        if request.method == "POST" and form.is_valid():
            try:
                apply(rollout, form.cleaned_data)
            except RolloutError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"{title}: done.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:mlmodels_rollout_change", args=[rollout.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title} — {rollout}",
            "form": form,
            "rollout": rollout,
            "opts": self.model._meta,
            "explanation": explanation,
            "comparison": comparison_html(arm_comparison(rollout)) if rollout.candidate_release is not None else None,
        }
        return TemplateResponse(request, "admin/mlmodels/rollout/lifecycle_form.html", context)

    def candidate_view(self, request, pk):
        return self._action(
            request, pk, CandidateForm, "Set the candidate release",
            lambda r, d: set_candidate(r, d["candidate_release"], percentage=d["percentage"] or 0,
                                       actor=request.user, reason=d["reason"]),
            explanation="A new candidate starts a new comparison between the arms.",
        )

    def percentage_view(self, request, pk):
        rollout = get_object_or_404(Rollout, pk=pk)
        return self._action(
            request, pk, PercentageForm, "Set the canary percentage",
            lambda r, d: set_canary_percentage(r, d["percentage"], actor=request.user, reason=d["reason"]),
            initial={"percentage": rollout.canary_percentage},
            explanation="Raising the percentage keeps everyone already in the canary in it; 0 stops the canary.",
        )

    def promote_view(self, request, pk):
        return self._action(
            request, pk, ReasonForm, "Promote the candidate to stable",
            lambda r, d: promote_candidate(r, actor=request.user, reason=d["reason"]),
            explanation="Everyone is then served the candidate release; the current stable is kept as "
            "the previous stable for a rollback.",
        )

    def rollback_view(self, request, pk):
        return self._action(
            request, pk, ReasonForm, "Roll back to the previous stable release",
            lambda r, d: rollback_to_previous_stable(r, actor=request.user, reason=d["reason"]),
            explanation="Everyone is served the previous stable release again from their next forecast; "
            "the demoted release stays as a candidate at 0%.",
        )

    def auto_promote_view(self, request, pk):
        rollout = get_object_or_404(Rollout, pk=pk)
        return self._action(
            request, pk, AutoPromoteForm, "Automatic promotion",
            lambda r, d: set_auto_promote(r, d["enabled"], actor=request.user, reason=d["reason"]),
            initial={"enabled": rollout.auto_promote},
        )

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
            "rollouts": [(r, arm_comparison(r) if r.candidate_release is not None else None)
                         for r in Rollout.objects.all()],
        }
        for row in context["overview"]["serving"]:
            row["mae_cells"] = [
                (h, "–" if row["mae"].get(str(h)) is None
                 else f'{row["mae"][str(h)]:.1f} ({row["n_matched"][str(h)]})')
                for h in context["overview"]["horizons"]
            ]
        for rollout, comparison in context["rollouts"]:
            rollout.comparison_html = comparison_html(comparison) if comparison else None
        return TemplateResponse(request, "admin/mlmodels/rollout/monitoring.html", context)


@admin.register(RolloutEvent)
class RolloutEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "model_type", "action", "actor_name", "person", "ml_model", "reason"]
    list_filter = ["action", "model_type", "actor_name"]
    search_fields = ["reason", "actor_name", "person__display_name"]
    date_hierarchy = "created_at"
    list_select_related = ["person", "ml_model"]
    allow_delete = False  # the audit trail


@admin.register(ModelPin)
class ModelPinAdmin(ReadOnlyAdmin):
    """Pins are made from the model list (action "pin"); removing one here records why."""

    list_display = ["person", "model_type", "ml_model", "reason", "created_by", "created_at"]
    list_select_related = ["person", "ml_model", "created_by"]
    actions = ["unpin"]
    allow_delete = False  # the "unpin" action asks for a reason instead

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    action_form = ReasonActionForm

    @admin.action(description="Remove the pin (the rollout decides again)")
    def unpin(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "Give a reason (the field next to the action).", messages.ERROR)
            return
        for pin in queryset.select_related("person"):
            unpin_person(pin.person, pin.model_type, actor=request.user, reason=reason)
        self.message_user(request, "Pins removed.", messages.SUCCESS)


# --- Models -----------------------------------------------------------------------------------


class ReleaseFilter(admin.SimpleListFilter):
    title = "release"
    parameter_name = "release"

    def lookups(self, request, model_admin):
        majors = MLModel.objects.order_by("version_major").values_list("version_major", flat=True).distinct()
        return [(str(m), f"{m}.x") for m in majors]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        try:
            return queryset.filter(version_major=int(self.value()))
        except ValueError:
            return queryset.none()


class FilesFilter(admin.SimpleListFilter):
    title = "artifact files"
    parameter_name = "files"

    def lookups(self, request, model_admin):
        return [("stored", "stored"), ("removed", "removed")]

    def queryset(self, request, queryset):
        if self.value() == "stored":
            return queryset.exclude(storage_path="")
        if self.value() == "removed":
            return queryset.filter(storage_path="")
        return queryset


def _realized(horizon: int):
    from predictions.models import ModelPerformance

    rows = ModelPerformance.objects.filter(ml_model=OuterRef("pk"), horizon_min=horizon, n_matched__gt=0)
    return Subquery(
        rows.annotate(mae=Cast(F("sum_abs_error"), FloatField()) / Cast(F("n_matched"), FloatField()))
        .values("mae")[:1],
        output_field=FloatField(),
    )


class LifecycleMLModelAdmin(MLModelAdmin):
    list_display = list(MLModelAdmin.list_display) + [
        "release", "realized_mae_30", "realized_mae_60", "artifact_link",
    ]
    list_filter = ["model_type", ReleaseFilter, "status", "is_active", FilesFilter, "algorithm"]
    action_form = ReasonActionForm
    actions = ["activate", "rollback_to_previous", "archive", "pin"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            realized_mae_30_value=_realized(30), realized_mae_60_value=_realized(60)
        )

    @admin.display(description="release", ordering="version_major")
    def release(self, obj):
        return f"{obj.version_major}.x"

    @admin.display(description="realized MAE 30 min", ordering="realized_mae_30_value")
    def realized_mae_30(self, obj):
        return _fmt(getattr(obj, "realized_mae_30_value", None))

    @admin.display(description="realized MAE 60 min", ordering="realized_mae_60_value")
    def realized_mae_60(self, obj):
        return _fmt(getattr(obj, "realized_mae_60_value", None))

    @admin.display(description="artifact")
    def artifact_link(self, obj):
        if not obj.storage_path:
            return "–"
        return format_html('<a href="{}">signed link</a>', reverse("admin:mlmodels_mlmodel_artifact_link", args=[obj.pk]))

    def get_urls(self):
        return [
            path(
                "<int:pk>/artifact-link/",
                self.admin_site.admin_view(self.artifact_link_view),
                name="mlmodels_mlmodel_artifact_link",
            ),
        ] + super().get_urls()

    def artifact_link_view(self, request, pk):
        from mlmodels.artifact_links import LINK_MAX_AGE_S, signed_artifact_url

        mlmodel = get_object_or_404(MLModel, pk=pk)
        if not self.has_view_permission(request, mlmodel):
            raise PermissionDenied
        if not mlmodel.storage_path:
            raise Http404("This version's files were removed.")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Download {mlmodel}",
            "opts": self.model._meta,
            "mlmodel": mlmodel,
            "url": request.build_absolute_uri(signed_artifact_url(mlmodel, request.user)),
            "max_age_min": LINK_MAX_AGE_S / 60,
        }
        return TemplateResponse(request, "admin/mlmodels/mlmodel/artifact_link.html", context)

    def _each(self, request, queryset, label, apply):
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "Give a reason (the field next to the action).", messages.ERROR)
            return
        done, refused = 0, []
        for mlmodel in queryset.select_related("person", "parent"):
            try:
                apply(mlmodel, reason)
                done += 1
            except RolloutError as exc:
                refused.append(f"{mlmodel}: {exc}")
        if done:
            self.message_user(request, f"{label}: {done} done.", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.ERROR)

    @admin.action(description="Activate the selected version (one per person)")
    def activate(self, request, queryset):
        self._each(request, queryset, "Activated",
                   lambda m, reason: activate_model(m, actor=request.user, reason=reason))

    @admin.action(description="Roll the person back to the version before the active one")
    def rollback_to_previous(self, request, queryset):
        people = {(m.person_id, m.model_type): m for m in queryset.select_related("person")}
        self._each(
            request, MLModel.objects.filter(pk__in=[m.pk for m in people.values()]), "Rolled back",
            lambda m, reason: rollback_person_model(m.person, m.model_type, actor=request.user, reason=reason),
        )

    @admin.action(description="Archive (remove the files; never the active, previous or pinned one)")
    def archive(self, request, queryset):
        self._each(request, queryset, "Archived",
                   lambda m, reason: archive_model(m, actor=request.user, reason=reason))

    @admin.action(description="Pin the person to the selected version")
    def pin(self, request, queryset):
        self._each(request, queryset, "Pinned",
                   lambda m, reason: pin_person(m, actor=request.user, reason=reason))


admin.site.unregister(MLModel)
admin.site.register(MLModel, LifecycleMLModelAdmin)
