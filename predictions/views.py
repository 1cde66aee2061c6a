"""Pages of the predictions app: the dashboard, the retrain button and forecast feedback."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from persons.services import person_for
from predictions import pages


@login_required
@require_GET
def dashboard(request):
    person = person_for(request.user)
    with timezone.override(person.tz):
        context = pages.dashboard(person, view=request.GET.get("view", "2h"))
        return render(request, "predictions/dashboard.html", context)


@login_required
@require_POST
def retrain(request):
    person = person_for(request.user)
    job, created = pages.ask_for_retraining(person)
    if created:
        messages.success(request, _("Retraining is queued. It runs in the background; this page shows its status."))
    else:
        messages.info(request, _("A retraining is already queued or running."))
    return redirect("dashboard")


@login_required
@require_POST
def feedback(request, prediction_id: int):
    person = person_for(request.user)
    helpful = request.POST.get("helpful")
    if helpful not in ("yes", "no"):
        messages.error(request, _("Choose whether the forecast was helpful or not."))
        return redirect("dashboard")
    pages.save_feedback(person, prediction_id, helpful=helpful == "yes")
    messages.success(request, _("Thank you for your feedback."))
    return redirect("dashboard")
