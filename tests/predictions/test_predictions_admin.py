"""The admin shows the prediction log and realized performance, read-only."""

import pytest

from predictions.models import ModelPerformance
from predictions.services import forecast_for_person

pytestmark = pytest.mark.django_db


def test_log_and_performance_pages_render_and_cannot_be_edited(admin_client, person_with_model):
    log = forecast_for_person(person_with_model)
    ModelPerformance.objects.create(person=person_with_model, ml_model=log.ml_model, model_version="1.0.0",
                                    horizon_min=30, n_matched=4, sum_abs_error=40.0, sum_squared_error=500.0,
                                    n_inside_80=3, n_inside_95=4)

    assert admin_client.get("/admin/predictions/predictionlog/").status_code == 200
    detail = admin_client.get(f"/admin/predictions/predictionlog/{log.pk}/change/")
    assert detail.status_code == 200 and b"1.0.0" in detail.content
    listing = admin_client.get("/admin/predictions/modelperformance/")
    assert listing.status_code == 200
    assert b"10.0" in listing.content and b"75%" in listing.content  # MAE 40/4, 3 of 4 inside 80%
    assert admin_client.get("/admin/predictions/predictionlog/add/").status_code == 403
    response = admin_client.post(f"/admin/predictions/predictionlog/{log.pk}/change/", {"unit": "mmol/L"})
    assert response.status_code == 403
