"""Pages of the predictions app: the dashboard, the retrain button, forecast feedback, and the
Prometheus scrape endpoint /metrics."""

import hmac

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from observations.bounds import page_rate_exceeded
from persons.row_security import use_everyone_for_request
from persons.services import person_for
from predictions import pages
from predictions.monitoring import prometheus_text

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
    if page_rate_exceeded(request, "train"):
        messages.error(request, _("Too many retraining requests in a short time; try again in a minute."))
        return redirect("dashboard")
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


def metrics_allowed(request) -> bool:
    """Staff (session) or `Authorization: Bearer <GLUCAST_METRICS_TOKEN>` when that is set."""
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        return True
    expected = settings.GLUCAST_METRICS_TOKEN or ""
    header = request.headers.get("Authorization", "")
    if expected and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), expected.encode())
    return False


@require_GET
def metrics(request):
    if not metrics_allowed(request):
        response = HttpResponse("Staff or a bearer token only.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="glucast metrics"'
        return response
    use_everyone_for_request("metrics")  # figures over everyone, for staff or the metrics token
    response = HttpResponse(prometheus_text(), content_type=PROMETHEUS_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
