"""The OpenAPI schema for the observation endpoints generates without warnings and documents
the request/response shapes."""

from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

OBSERVATION_PATTERNS = [path("api/", include("observations.api_urls"))]


def test_observation_endpoints_schema_has_no_warnings_or_errors(db):
    reset_generator_stats()
    schema = SchemaGenerator(patterns=OBSERVATION_PATTERNS).get_schema(request=None, public=True)
    validate_schema(schema)
    assert dict(GENERATOR_STATS._warn_cache) == {}
    assert dict(GENERATOR_STATS._error_cache) == {}

    paths = schema["paths"]
    assert set(paths) == {
        "/api/observations/",
        "/api/observations/import/",
        "/api/observations/{id}/",
        "/api/imports/",
        "/api/imports/{id}/",
        "/api/treatments/",
        "/api/treatments/{id}/",
        "/api/fhir/Bundle",
        "/api/fhir/Observation",
        "/api/fhir/MedicationAdministration",
    }
    listing = paths["/api/observations/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"start", "end", "limit", "offset"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("PaginatedObservationList")
    create = paths["/api/observations/"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("ImportSummary")
    assert create["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("ImportError")
    one_or_many = schema["components"]["schemas"]["ObservationInputOneOrManyRequest"]["oneOf"]
    assert {"$ref": "#/components/schemas/ObservationInRequest"} in one_or_many
    assert any(option.get("type") == "array" for option in one_or_many)
    upload = paths["/api/observations/import/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert "application/fhir+json" in paths["/api/fhir/Bundle"]["post"]["requestBody"]["content"]
    search = paths["/api/fhir/Observation"]["get"]
    # `format` is DRF's renderer override (?format=json|fhir), documented because it works
    assert {p["name"] for p in search["parameters"]} == {"date", "patient", "_count", "_offset", "code", "format"}
    assert "application/fhir+json" in search["responses"]["200"]["content"]
    assert "delete" in paths["/api/imports/{id}/"]
    treatments = paths["/api/treatments/"]["get"]
    assert {p["name"] for p in treatments["parameters"]} >= {"start", "end", "kind", "import_batch", "limit", "offset"}
