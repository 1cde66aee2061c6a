"""Pages of the observations app: insights for a period, and the person's data (upload, imports,
delete one import). Views parse the request and call observations.pages; nothing is computed here."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from observations import pages
from observations.forms import InsightsPeriodForm, UploadForm
from observations.models import ImportBatch
from observations.validation import ImportRejected
from persons.services import person_for


@login_required
@require_GET
def insights(request):
    person = person_for(request.user)
    form = InsightsPeriodForm(request.GET or None, tz=person.tz)
    if request.GET and not form.is_valid():
        return render(request, "observations/insights.html", {"form": form, "person": person}, status=400)
    if not request.GET:
        form = InsightsPeriodForm({}, tz=person.tz)
        form.is_valid()
    period = form.cleaned_data
    # Show the period actually used in the date fields (the default one too).
    form = InsightsPeriodForm({"start": period["start"].isoformat(), "end": period["end"].isoformat()}, tz=person.tz)
    with timezone.override(person.tz):
        context = pages.insights(person, start=period["start_at"], end=period["end_at"])
        context.update(form=form, person=person, period_start=period["start"], period_end=period["end"])
        return render(request, "observations/insights.html", context)


def _data_context(person, **extra):
    context = {
        "person": person,
        "imports": pages.imports_for_page(person),
        "upload_form": UploadForm(),
    }
    context.update(extra)
    return context


def _wants_json(request) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


@login_required
@require_GET
def data(request):
    person = person_for(request.user)
    imported = None
    if request.GET.get("imported", "").isdigit():
        imported = ImportBatch.objects.for_person(person).filter(pk=int(request.GET["imported"])).first()
    with timezone.override(person.tz):
        return render(request, "observations/data.html", _data_context(person, imported=imported))


@login_required
@require_POST
def upload(request):
    person = person_for(request.user)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse({"ok": False, "detail": _("Choose a file to upload."), "errors": []}, status=400)
        with timezone.override(person.tz):
            return render(request, "observations/data.html", _data_context(person, upload_form=form), status=400)
    upload_file = form.cleaned_data["file"]
    try:
        result = pages.upload_readings(
            person, upload_file.read(), filename=upload_file.name, fmt=form.cleaned_data["format"] or "auto"
        )
    except ImportRejected as rejected:
        payload = rejected.as_payload()
        if _wants_json(request):
            return JsonResponse({"ok": False, **payload}, status=400)
        with timezone.override(person.tz):
            return render(
                request, "observations/data.html", _data_context(person, upload_form=form, rejected=payload), status=400
            )
    target = f"{reverse('data')}?imported={result.batch.pk}"
    if _wants_json(request):
        batch = result.batch
        return JsonResponse(
            {"ok": True, "import_id": batch.pk, "created": batch.n_created, "duplicates": batch.n_duplicates,
             "skipped": batch.n_skipped, "redirect": target}
        )
    return redirect(target)


@login_required
@require_POST
def delete_import(request, batch_id: int):
    person = person_for(request.user)
    n_readings = pages.remove_import(person, batch_id)
    messages.success(request, _("The import and its %(n)d readings were deleted.") % {"n": n_readings})
    return redirect("data")
