"""The data page lists recorded treatments and deletes them with their import; German too."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from observations.models import ImportBatch, Treatment
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db


def upload_treatments(logged_in):
    upload = SimpleUploadedFile("treatments.csv", (FIXTURES / "treatments.csv").read_bytes())
    return logged_in.post(reverse("data-upload"), {"file": upload, "format": "auto"})


def test_the_data_page_lists_treatments_and_deletes_them_per_import(logged_in, person):
    response = upload_treatments(logged_in)
    assert response.status_code == 302
    page = logged_in.get(response["Location"]).content.decode()
    assert "7 new treatments, 0 already stored." in page
    treatments = page.split('data-testid="treatments"')[1].split("</section>")[0]
    assert treatments.count("<tr data-kind=") == 7
    assert 'data-kind="temp_basal"' in treatments and "30 min" in treatments and "ultra-rapid-acting" in treatments
    assert "never suggests how much insulin to take" in treatments
    batch = ImportBatch.objects.for_person(person).get()
    assert "its 0 readings and its 7 treatments?" in page
    deleted = logged_in.post(reverse("data-import-delete", args=[batch.pk]), follow=True)
    assert "its 7 treatments were deleted" in deleted.content.decode()
    assert not Treatment.objects.for_person(person).exists()
    assert "No treatments recorded." in logged_in.get(reverse("data")).content.decode()


def test_another_persons_treatments_are_not_shown(logged_in, person, other_person, client):
    from tests.conftest import token_client

    token_client(other_person).post("/api/treatments/", [{"kind": "carbs", "effective_at": "2026-01-01T08:00:00Z",
                                                          "amount": 77}], format="json")
    page = logged_in.get(reverse("data")).content.decode()
    assert "77 g" not in page and "No treatments recorded." in page


def test_the_treatments_section_in_german(logged_in, person):
    upload_treatments(logged_in)
    page = logged_in.get(reverse("data"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Behandlungen" in page and "schlägt nie vor, wie viel Insulin Sie nehmen" in page
    assert "Kohlenhydrate" in page and "temporäre Basalrate" in page


def test_the_dashboard_marks_meals_and_insulin_under_the_glucose_line(logged_in, person):
    import datetime as dt

    from django.utils import timezone

    from observations.treatments.services import store_treatments
    from observations.treatments.validation import RawTreatment
    from tests.pages.conftest import load_readings

    load_readings(person, days=2)
    now = timezone.now()
    store_treatments(person=person, source="api", records=[
        RawTreatment(row=1, kind="carbs", time=(now - dt.timedelta(hours=2)).isoformat(), amount=45),
        RawTreatment(row=2, kind="bolus", time=(now - dt.timedelta(hours=2, minutes=-3)).isoformat(), amount=4.5),
        RawTreatment(row=3, kind="bolus", time=(now - dt.timedelta(hours=30)).isoformat(), amount=9),  # off the chart
        RawTreatment(row=4, kind="temp_basal", time=(now - dt.timedelta(hours=1)).isoformat(), amount=0.3, duration_min=30),
    ])
    response = logged_in.get(reverse("dashboard"))
    html = response.content.decode()
    marks = response.context["charts"]["wide"]["treatment_marks"]
    assert [m["kind"] for m in marks] == ["carbs", "bolus"]
    plot = response.context["charts"]["wide"]["plot"]
    assert all(plot["y"] < m["y"] < plot["bottom"] for m in marks)  # inside the plot, along its bottom
    assert 'class="mark-carbs"' in html and 'class="mark-insulin"' in html
    assert "g carbohydrates recorded</title>" in html and "4.5 U recorded</title>" in html
    assert "Marked under the glucose line:" in response.context["chart_summary"]
    assert "Insulin you recorded" in html
    german = logged_in.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Kohlenhydrate erfasst</title>" in german and "4,5 U erfasst</title>" in german
    assert "Von Ihnen erfasstes Insulin" in german
