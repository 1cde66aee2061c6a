"""The forecast endpoint is throttled per user (429 beyond the configured rate)."""

import pytest

from tests.conftest import token_client

pytestmark = pytest.mark.django_db

URL = "/api/predictions/glucose/"


@pytest.fixture
def three_per_minute(settings, one_rate_window):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "forecast": "3/min"},
    }


def test_requests_beyond_the_rate_get_429(api, person_with_readings, three_per_minute):
    codes = [api.post(URL, {"horizons": [30]}, format="json").status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    response = api.post(URL, {}, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_the_rate_is_per_person_and_only_on_forecasts(api, person_with_readings, other_person, three_per_minute):
    for _ in range(3):
        api.post(URL, {}, format="json")
    assert api.post(URL, {}, format="json").status_code == 429
    assert api.get("/api/predictions/").status_code == 200
    # Another person has their own allowance (422: they have no readings, but not throttled).
    assert token_client(other_person).post(URL, {}, format="json").status_code == 422


def test_bad_requests_count_too(api, person_with_readings, three_per_minute):
    for _ in range(3):
        assert api.post(URL, {"horizons": [7]}, format="json").status_code == 400
    assert api.post(URL, {}, format="json").status_code == 429
