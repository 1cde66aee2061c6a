"""Pages of the observations app: insights for a period, and the person's data (upload, imports,
delete one import, the Nightscout connection). Views parse the request and call observations.pages; nothing is computed here."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from observations import pages
from observations.bounds import page_rate_exceeded, upload_refused, upload_too_large_message
from observations.forms import InsightsPeriodForm, NightscoutSourceForm, UploadForm
from observations.models import ImportBatch
from observations.nightscout import outbound
from observations.nightscout import pull as nightscout_pull
from observations.nightscout import secrets as nightscout_secrets
from observations.nightscout import tokens as nightscout_tokens
from observations.nightscout.models import NightscoutAccessToken, NightscoutSource, NightscoutUploadSecret
from observations.services import check_upload_size
from observations.validation import ImportRejected, ascii_digits
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


def _nightscout_context(request, person, *, new_secret=None, source_form=None, new_token=None) -> dict:
    """The data page's "Live readings" part: upload secret, API v3 access token, addresses to
    type, pull status."""
    base = request.build_absolute_uri("/ns/")
    scheme, _, rest = base.partition("://")
    source = NightscoutSource.objects.for_person(person).first()
    if source_form is None:
        source_form = NightscoutSourceForm(initial={"url": source.url} if source else None)
    return {
        "ns_base_url": base,
        "ns_secret": NightscoutUploadSecret.objects.for_person(person).first(),
        "ns_new_secret": new_secret,
        "ns_xdrip_url": f"{scheme}://{new_secret or 'SECRET'}@{rest}api/v1/",
        "ns_source": source,
        "ns_source_form": source_form,
        # AndroidAPS (NSClientV3) takes the address without /api/ and a trailing slash.
        "ns_aaps_url": base.rstrip("/"),
        "ns_token": NightscoutAccessToken.objects.for_person(person).first(),
        "ns_new_token": new_token,
    }


def _data_context(person, request=None, **extra):
    context = {
        "person": person,
        "imports": pages.imports_for_page(person),
        "treatments": pages.treatments_for_page(person),
        "upload_form": UploadForm(),
    }
    if request is not None:
        context.update(_nightscout_context(request, person, new_secret=extra.pop("new_secret", None),
                                           source_form=extra.pop("source_form", None),
                                           new_token=extra.pop("new_token", None)))
    context.update(extra)
    return context


def _wants_json(request) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


@login_required
@require_GET
def data(request):
    person = person_for(request.user)
    imported = None
    if ascii_digits(request.GET.get("imported")) and len(request.GET["imported"]) <= 18:
        imported = ImportBatch.objects.for_person(person).filter(pk=int(request.GET["imported"])).first()
    with timezone.override(person.tz):
        return render(request, "observations/data.html", _data_context(person, request, imported=imported))


@login_required
@require_POST
def upload(request):
    person = person_for(request.user)
    form = UploadForm(request.POST, request.FILES)
    if page_rate_exceeded(request, "import"):
        payload = ImportRejected.file_error(_("Too many uploads in a short time; try again in a minute.")).as_payload()
        if _wants_json(request):
            return JsonResponse({"ok": False, **payload}, status=429)
        with timezone.override(person.tz):
            return render(request, "observations/data.html", _data_context(person, rejected=payload), status=429)
    if upload_refused(request):  # the file was cut off while it streamed in: nothing was kept
        payload = ImportRejected.file_error(upload_too_large_message()).as_payload()
        if _wants_json(request):
            return JsonResponse({"ok": False, **payload}, status=413)
        with timezone.override(person.tz):
            return render(request, "observations/data.html", _data_context(person, rejected=payload), status=413)
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse({"ok": False, "detail": _("Choose a file to upload."), "errors": []}, status=400)
        with timezone.override(person.tz):
            return render(request, "observations/data.html", _data_context(person, request, upload_form=form), status=400)
    upload_file = form.cleaned_data["file"]
    try:
        check_upload_size(upload_file.size)  # before the file is read into memory
        result = pages.upload_readings(
            person, upload_file.read(), filename=upload_file.name, fmt=form.cleaned_data["format"] or "auto"
        )
    except ImportRejected as rejected:
        payload = rejected.as_payload()
        if _wants_json(request):
            return JsonResponse({"ok": False, **payload}, status=400)
        with timezone.override(person.tz):
            return render(
                request, "observations/data.html", _data_context(person, request, upload_form=form, rejected=payload), status=400
            )
    target = f"{reverse('data')}?imported={result.batch.pk}"
    if _wants_json(request):
        batch = result.batch
        return JsonResponse(
            {"ok": True, "import_id": batch.pk, "created": batch.n_created, "duplicates": batch.n_duplicates,
             "skipped": batch.n_skipped, "treatments": batch.n_treatments, "redirect": target}
        )
    return redirect(target)


@login_required
@require_POST
def delete_import(request, batch_id: int):
    person = person_for(request.user)
    n_readings, n_treatments = pages.remove_import(person, batch_id)
    if n_treatments:
        messages.success(request, _("The import, its %(n)d readings and its %(t)d treatments were deleted.")
                         % {"n": n_readings, "t": n_treatments})
    else:
        messages.success(request, _("The import and its %(n)d readings were deleted.") % {"n": n_readings})
    return redirect("data")


# --- Live readings: the Nightscout connection ---------------------------------------------------


@login_required
@require_POST
def nightscout_secret(request):
    """Create or rotate the upload secret; the page shows it once (rendered, never redirected
    through a message, so it is not stored in a cookie or the session)."""
    person = person_for(request.user)
    secret = nightscout_secrets.issue_secret(person=person)
    with timezone.override(person.tz):
        response = render(request, "observations/data.html", _data_context(person, request, new_secret=secret))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def nightscout_secret_revoke(request):
    person = person_for(request.user)
    if nightscout_secrets.revoke_secret(person=person):
        messages.success(request, _("The upload secret was removed; apps using it can no longer send readings."))
    return redirect("data")


@login_required
@require_POST
def nightscout_token(request):
    """Create or rotate the API v3 access token (AndroidAPS); shown once, like the secret."""
    person = person_for(request.user)
    token = nightscout_tokens.issue_access_token(person=person)
    with timezone.override(person.tz):
        response = render(request, "observations/data.html", _data_context(person, request, new_token=token))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def nightscout_token_revoke(request):
    person = person_for(request.user)
    if nightscout_tokens.revoke_access_token(person=person):
        messages.success(request, _("The access token was removed; AndroidAPS can no longer upload with it."))
    return redirect("data")


@login_required
@require_POST
def nightscout_source(request):
    person = person_for(request.user)
    form = NightscoutSourceForm(request.POST)
    if form.is_valid():
        try:
            nightscout_pull.save_source(person, url=form.cleaned_data["url"], access_token=form.cleaned_data["access_token"])
        except outbound.OutboundRefused as refused:
            form.add_error("url", str(refused))
        else:
            messages.success(request, _("Your Nightscout site is connected; the first pull runs within 5 minutes."))
            return redirect("data")
    with timezone.override(person.tz):
        return render(request, "observations/data.html", _data_context(person, request, source_form=form), status=400)


@login_required
@require_POST
def nightscout_source_remove(request):
    person = person_for(request.user)
    if nightscout_pull.remove_source(person):
        messages.success(request, _("Your Nightscout site is disconnected. Readings already pulled stay."))
    return redirect("data")
