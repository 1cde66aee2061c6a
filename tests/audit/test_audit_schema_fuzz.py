"""No-500 audit: property-based fuzzing of the API from its own OpenAPI schema (schemathesis),
through Django's WSGI application, as a person who has readings and a model.

Every operation gets schema-valid (positive) and schema-violating (negative) requests, and those
with an {id} also schema-valid requests naming the person's own object; no answer may be a 5xx,
and 2xx answers must match the documented response schema."""

from __future__ import annotations

import time

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis.errors import Unsatisfiable  # noqa: E402
from hypothesis import HealthCheck, given, settings as hypothesis_settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from django.db import transaction  # noqa: E402

from config.wsgi import application  # noqa: E402
from mlmodels.models import MLModel, TrainingJob  # noqa: E402
from observations.models import ImportBatch, Observation, Treatment  # noqa: E402
from observations.treatments.services import store_treatments  # noqa: E402
from observations.treatments.validation import RawTreatment  # noqa: E402
from predictions.models import PredictionLog  # noqa: E402
from predictions.services import forecast_for_person  # noqa: E402
from tests.conftest import token_client  # noqa: E402
from tests.predictions.conftest import recent_readings, register_model, store_readings  # noqa: E402

MAX_EXAMPLES = 25
# Operations where random input means nothing: none so far (multipart upload stays in).
EXCLUDED_OPERATIONS: set[str] = set()


# Path prefix -> the fuzzed person's own object of that kind (for the {id} parameter).
OWN_OBJECTS = {
    "/api/imports/": ImportBatch,
    "/api/models/jobs/": TrainingJob,
    "/api/models/": MLModel,
    "/api/observations/": Observation,
    "/api/predictions/": PredictionLog,
    "/api/treatments/": Treatment,
}


def own_id(path: str, person) -> int:
    for prefix, model in OWN_OBJECTS.items():
        if path.startswith(prefix):
            return model.objects.for_person(person).values_list("pk", flat=True).first()
    raise AssertionError(f"{path}: add the kind of object its {{id}} names to OWN_OBJECTS")


def documented_success(ctx, response, case):
    """2xx bodies match the documented response schema (error bodies are checked elsewhere)."""
    if 200 <= response.status_code < 300:
        return response_schema_conformance(ctx, response, case)
    return None


@pytest.fixture
def keep_test_connection():
    """Calling the WSGI app directly fires request_started/finished, whose close_old_connections
    would close the test's transaction-wrapped connection; Django's own test client disconnects
    it the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzzed_person(person, settings, keep_test_connection):
    store_readings(person, recent_readings(6, seed=7))
    register_model(person)
    # One real object of each kind, so a pass with the person's OWN ids reaches the success paths.
    ImportBatch.objects.create(person=person, source="csv", filename="fuzz.csv")
    store_treatments(person=person, source="api", records=[
        RawTreatment(row=1, kind="bolus", time="2026-01-01T08:00:00Z", amount=3.0, insulin_kind="rapid"),
        RawTreatment(row=2, kind="temp_basal", time="2026-01-01T08:05:00Z", amount=0.5, duration_min=30),
    ])
    TrainingJob.objects.create(person=person, status="queued", trigger="api")
    forecast_for_person(person, source="api")
    settings.ALLOWED_HOSTS = ["*"]
    # Throttling answers 429, never a 5xx, but would hide the forecast view behind it.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}), "forecast": "100000/min"},
    }
    return person


def test_no_operation_answers_a_server_error(fuzzed_person):
    client = token_client(fuzzed_person)
    auth = {"Authorization": client._credentials["HTTP_AUTHORIZATION"]}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application, headers=auth)
    failures, timings = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in EXCLUDED_OPERATIONS:
            continue
        passes = [("positive", GenerationMode.POSITIVE, {}), ("negative", GenerationMode.NEGATIVE, {})]
        if "{id}" in operation.path:
            own = {"id": own_id(operation.path, fuzzed_person)}
            passes.append(("own id", GenerationMode.POSITIVE, {"path_parameters": own}))
        for label, mode, fixed in passes:
            checks = [not_a_server_error] + ([documented_success] if mode is GenerationMode.POSITIVE else [])

            @hypothesis_settings(
                max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode, **fixed))
            def fuzz(case):
                # Each example in its own savepoint, rolled back: examples stay independent
                # (a fuzzed DELETE does not empty the data the next one reads).
                savepoint = transaction.savepoint()
                try:
                    case.call_and_validate(headers=auth, checks=checks)
                finally:
                    transaction.savepoint_rollback(savepoint)

            started = time.perf_counter()
            try:
                fuzz()
            except Unsatisfiable:
                continue  # nothing to negate: the operation takes no parameters or body
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, not only the first
                failures.append(f"{operation.label} [{label}]: {exc}")
            timings[f"{operation.label} [{label}]"] = round(time.perf_counter() - started, 2)
    print("fuzz timings (s):", timings)
    assert not failures, "\n\n".join(failures)
