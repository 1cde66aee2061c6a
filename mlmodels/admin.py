"""Staff screens of the model registry and its lifecycle.

- Models: versions with their held-out figures, a release filter, actions (activate, roll back
  to the previous version, archive, pin the person) that ask for a reason, and a short-lived
  signed artifact link.
- Rollouts: changed only through buttons that ask for a reason and record a RolloutEvent.
- Training jobs, rollout events (the audit trail) and pins.

MLModelAdmin and RolloutAdmin are registered by predictions/admin.py, which adds the figures
judged from forecast outcomes (realized MAE, the stable-vs-canary comparison, monitoring).
Every view here goes through admin_site.admin_view: staff only, others are sent to the login.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from mlmodels.artifact_links import max_age_s, signed_artifact_url
from mlmodels.lifecycle import activate_model, archive_model, rollback_person_model
from mlmodels.models import MLModel, ModelPin, Rollout, RolloutEvent, TrainingJob, metric_value
from mlmodels.rollouts import (
    RolloutError,
    create_rollout,
    model_types,
    release_choices,
    set_shadow_percentage,
    pin_person,
    promote_candidate,
    rollback_to_previous_stable,
    set_auto_promote,
    set_candidate,
    set_canary_percentage,
    unpin_person,
)
from persons.admin import ReadOnlyAdmin

REASON_HELP = "Why: kept in the history with your name."


# --- Forms ------------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=REASON_HELP)


class ReleaseChoiceField(forms.TypedChoiceField):
    """A release chosen from those that exist (mlmodels.rollouts.release_choices), never typed."""

    def __init__(self, *, model_type=None, blank_label=None, **kwargs):
        choices = release_choices(model_type)
        if blank_label is not None:
            choices = [("", blank_label), *choices]
        super().__init__(choices=choices, coerce=int, empty_value=None, **kwargs)


class PercentageForm(ReasonForm):
    percentage = forms.IntegerField(
        min_value=0, max_value=100,
        help_text="People whose bucket (0-99) is below this number are served the candidate.",
    )
    field_order = ["percentage", "reason"]


class ShadowForm(ReasonForm):
    percentage = forms.IntegerField(
        min_value=0, max_value=100, label="Shadow percentage",
        help_text="The next people after the canary share get the candidate computed after their answer: "
        "logged and compared on the same outcomes, never shown to them.",
    )
    field_order = ["percentage", "reason"]


class CandidateForm(ReasonForm):
    percentage = forms.IntegerField(min_value=0, max_value=100, initial=0, label="Canary percentage")
    shadow_percentage = forms.IntegerField(
        min_value=0, max_value=100, initial=0, label="Shadow percentage",
        help_text="Run the candidate in shadow for this share first (paired comparison, nothing shown).",
    )
    field_order = ["candidate_release", "percentage", "shadow_percentage", "reason"]

    def __init__(self, *args, model_type=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["candidate_release"] = ReleaseChoiceField(
            model_type=model_type, blank_label="— none (clear the candidate) —", required=False,
            help_text="A release that exists: one this code can serve, or one people have versions of.",
        )
        self.order_fields(self.field_order)


class AutoPromoteForm(ReasonForm):
    enabled = forms.BooleanField(required=False, label="Promote automatically when better")
    field_order = ["enabled", "reason"]


class RolloutAddForm(forms.ModelForm):
    """Model type and stable release are chosen from what exists (no free text)."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text=REASON_HELP)

    class Meta:
        model = Rollout
        fields = ["model_type", "stable_release"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        taken = set(Rollout.objects.values_list("model_type", flat=True))
        self.fields["model_type"] = forms.ChoiceField(
            choices=[(t, t) for t in model_types() if t not in taken],
            help_text="One rollout per model type.",
        )
        self.fields["stable_release"] = ReleaseChoiceField(help_text="The release everyone else is served.")


class ReasonActionForm(ActionForm):
    reason = forms.CharField(required=False, help_text=REASON_HELP, widget=forms.TextInput(attrs={"size": 50}))


# --- Models -----------------------------------------------------------------------------------




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


class MLModelAdmin(admin.ModelAdmin):
    """Registered by predictions/admin.py (with the realized-MAE columns)."""

    list_display = [
        "person", "model_type", "version", "algorithm", "status", "is_active", "trained_at",
        "mae_30", "mae_60", "baseline_mae_60", "vs_baseline_60", "n_readings", "release", "artifact_link",
    ]
    list_filter = ["model_type", ReleaseFilter, "status", "is_active", FilesFilter, "algorithm"]
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
    action_form = ReasonActionForm
    actions = ["activate", "rollback_to_previous", "archive", "pin"]

    def has_add_permission(self, request):
        return False  # versions are made by training and recalibration only

    def get_readonly_fields(self, request, obj=None):
        # Nothing of a trained version is edited by hand: its person above all (one person's
        # model served to another), and status/activation only through the lifecycle actions,
        # which record who and why.
        return [field.name for field in self.model._meta.fields]

    mae_30 = _mae_column(30)
    mae_60 = _mae_column(60)
    baseline_mae_60 = _mae_column(60, baseline=True)
    vs_baseline_60 = _vs_baseline(60)

    @admin.display(description="release", ordering="version_major")
    def release(self, obj):
        return f"{obj.version_major}.x"

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
            "max_age_min": max_age_s() / 60,
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

    # Each action declares its permission; a view-only staff member sees none of them.
    def has_activate_permission(self, request):
        return request.user.has_perm("mlmodels.activate_mlmodel")

    def has_archive_permission(self, request):
        return request.user.has_perm("mlmodels.archive_mlmodel")

    def has_pin_permission(self, request):
        return request.user.has_perm("mlmodels.pin_mlmodel")

    @admin.action(description="Activate the selected version (one per person)", permissions=["activate"])
    def activate(self, request, queryset):
        self._each(request, queryset, "Activated",
                   lambda m, reason: activate_model(m, actor=request.user, reason=reason))

    @admin.action(description="Roll the person back to the version before the active one", permissions=["activate"])
    def rollback_to_previous(self, request, queryset):
        people = {(m.person_id, m.model_type): m for m in queryset.select_related("person")}
        self._each(
            request, MLModel.objects.filter(pk__in=[m.pk for m in people.values()]), "Rolled back",
            lambda m, reason: rollback_person_model(m.person, m.model_type, actor=request.user, reason=reason),
        )

    @admin.action(description="Archive (remove the files; never the active, previous or pinned one)", permissions=["archive"])
    def archive(self, request, queryset):
        self._each(request, queryset, "Archived",
                   lambda m, reason: archive_model(m, actor=request.user, reason=reason))

    @admin.action(description="Pin the person to the selected version", permissions=["pin"])
    def pin(self, request, queryset):
        self._each(request, queryset, "Pinned",
                   lambda m, reason: pin_person(m, actor=request.user, reason=reason))


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

    def has_add_permission(self, request):
        return False  # jobs are made by the triggers (API, page, schedules, outcome task, commands)


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


class RolloutAdmin(admin.ModelAdmin):
    """Rollouts change only through the buttons (set candidate, canary percentage, promote, roll
    back, automatic promotion), each asking for a reason and recording a RolloutEvent.

    Registered by predictions/admin.py, which adds what judges the arms by their outcomes (the
    live comparison, the monitoring page); `comparison_for` is where it plugs in."""

    list_display = [
        "model_type", "stable_release", "candidate_release", "canary_percentage", "shadow_percentage", "status",
        "status_reason_short", "auto_promote", "updated_at",
    ]
    readonly_fields = [
        "model_type", "stable_release", "candidate_release", "canary_percentage", "shadow_percentage",
        "previous_stable_release", "status", "status_reason", "auto_promote", "candidate_since",
        "created_at", "updated_at",
    ]
    inlines = [RolloutEventInline]
    change_form_template = "admin/mlmodels/rollout/change_form.html"

    @admin.display(description="why")
    def status_reason_short(self, obj):
        return (obj.status_reason[:80] + "…") if len(obj.status_reason) > 80 else obj.status_reason

    def comparison_for(self, rollout):
        """HTML comparing the arms, shown under each button's form; none without outcomes."""
        return None

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
            path("<int:pk>/candidate/", wrap(self.candidate_view), name="mlmodels_rollout_candidate"),
            path("<int:pk>/percentage/", wrap(self.percentage_view), name="mlmodels_rollout_percentage"),
            path("<int:pk>/shadow/", wrap(self.shadow_view), name="mlmodels_rollout_shadow"),
            path("<int:pk>/promote/", wrap(self.promote_view), name="mlmodels_rollout_promote"),
            path("<int:pk>/rollback/", wrap(self.rollback_view), name="mlmodels_rollout_rollback"),
            path("<int:pk>/auto-promote/", wrap(self.auto_promote_view), name="mlmodels_rollout_auto_promote"),
        ] + super().get_urls()

    # Each button: a form with a reason; the service validates, records and bumps the generation.

    def _action(self, request, pk, form_class, title, apply, *, initial=None, explanation="", form_kwargs=None):
        rollout = get_object_or_404(Rollout, pk=pk)
        if not self.has_change_permission(request, rollout):
            raise PermissionDenied
        form = form_class(request.POST or None, initial=initial or {}, **(form_kwargs or {}))
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
            "comparison": self.comparison_for(rollout) if rollout.candidate_release is not None else None,
        }
        return TemplateResponse(request, "admin/mlmodels/rollout/lifecycle_form.html", context)

    def candidate_view(self, request, pk):
        rollout = get_object_or_404(Rollout, pk=pk)
        return self._action(
            request, pk, CandidateForm, "Set the candidate release",
            lambda r, d: set_candidate(r, d["candidate_release"], percentage=d["percentage"] or 0,
                                       shadow_percentage=d["shadow_percentage"] or 0,
                                       actor=request.user, reason=d["reason"]),
            explanation="A new candidate starts a new comparison between the arms.",
            form_kwargs={"model_type": rollout.model_type},
        )

    def shadow_view(self, request, pk):
        rollout = get_object_or_404(Rollout, pk=pk)
        return self._action(
            request, pk, ShadowForm, "Run the candidate in shadow",
            lambda r, d: set_shadow_percentage(r, d["percentage"], actor=request.user, reason=d["reason"]),
            initial={"percentage": rollout.shadow_percentage},
            explanation="Shadow forecasts are computed by the worker after each answer and scored against "
            "the same readings as what was served (a paired comparison); 0 stops them.",
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

    def has_pin_permission(self, request):
        return request.user.has_perm("mlmodels.pin_mlmodel")

    @admin.action(description="Remove the pin (the rollout decides again)", permissions=["pin"])
    def unpin(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "Give a reason (the field next to the action).", messages.ERROR)
            return
        for pin in queryset.select_related("person"):
            unpin_person(pin.person, pin.model_type, actor=request.user, reason=reason)
        self.message_user(request, "Pins removed.", messages.SUCCESS)
