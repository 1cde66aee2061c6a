"""Privacy audit: every URL that carries an object id, filled with person A's real objects,
answers person B with 404 (or 403/405: staff-only or method not allowed), never 2xx, never 5xx,
for GET and for every mutating method, with token auth (API) and with a session (pages).

A new id-bearing route fails `test_every_id_route_is_audited` until it is added to
ROUTE_AUDITS below, so no future route can skip the audit."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch

from mlmodels.artifact_links import signed_artifact_url
from mlmodels.models import MLModel, TrainingJob
from observations.models import ImportBatch, Observation, Treatment
from observations.nightscout.services import V3_UPLOAD, store_treatments_document
from predictions.models import PredictionFeedback, PredictionLog
from predictions.services import forecast_for_person
from tests.conftest import token_client
from tests.factories import UserFactory
from tests.mlmodels.conftest import store_readings
from tests.predictions.conftest import recent_readings, register_model

METHODS = ("get", "post", "put", "patch", "delete")
REFUSED = {403, 404, 405}


@dataclass
class RouteAudit:
    kwargs: Callable[[dict], dict]  # A's objects -> the route's URL kwargs
    owner_get_ok: bool = True  # A's own GET succeeds (proves the factory fills a real id)
    bodies: dict = field(default_factory=dict)  # method -> a VALID body, so only ownership can refuse it
    # A surface with its own credential (Nightscout API v3: person -> client with its JWT):
    # A's GET and B's requests use it instead of the API token and the session.
    client: Callable | None = None


def nightscout_v3_client(person) -> Client:
    """A client sending the person's Nightscout API v3 JWT, as AndroidAPS does."""
    from observations.nightscout.tokens import issue_access_token

    token = issue_access_token(person=person)
    jwt = Client().get(f"/api/v2/authorization/request/{token}").json()["token"]
    return Client(HTTP_AUTHORIZATION=f"Bearer {jwt}")


def _v3_document(collection: str) -> RouteAudit:
    identifier = {"entries": lambda a: a["v3_entry"], "treatments": lambda a: a["v3_treatment"]}.get(
        collection, lambda a: a["v3_entry"])
    return RouteAudit(
        lambda a: {"identifier": identifier(a)},
        owner_get_ok=collection in ("entries", "treatments"),
        bodies={"patch": {"sgv": 150, "insulin": 1.0}, "put": {"sgv": 150, "insulin": 1.0}},
        client=nightscout_v3_client,
    )


# Route name -> how to fill it with person A's objects. Keep one entry per id-bearing route.
ROUTE_AUDITS: dict[str, RouteAudit] = {
    "api-observation-detail": RouteAudit(lambda a: {"pk": a["reading"].pk}),
    "api-import-detail": RouteAudit(lambda a: {"pk": a["batch"].pk}),
    "api-training-job": RouteAudit(lambda a: {"pk": a["job"].pk}),
    "api-model-detail": RouteAudit(lambda a: {"pk": a["model"].pk}),
    "api-model-performance": RouteAudit(lambda a: {"pk": a["model"].pk}),
    "api-prediction-detail": RouteAudit(lambda a: {"pk": a["log"].pk}),
    "api-prediction-feedback": RouteAudit(
        lambda a: {"pk": a["log"].pk}, owner_get_ok=False, bodies={"post": {"helpful": False}}
    ),
    "data-import-delete": RouteAudit(lambda a: {"batch_id": a["batch"].pk}, owner_get_ok=False),
    "forecast-feedback": RouteAudit(
        lambda a: {"prediction_id": a["log"].pk}, owner_get_ok=False, bodies={"post": {"helpful": "no"}}
    ),
    # Staff-only signed link made for A's model; a non-staff B must get 404 (not the zip).
    "artifact-download": RouteAudit(lambda a: {"token": a["artifact_token"]}, owner_get_ok=False),
    # treatments-data's REST detail (added here so the merged branch keeps the audit whole)
    "api-treatment-detail": RouteAudit(lambda a: {"pk": a["treatment"].pk}),
    **{f"ns3-{collection}-document": _v3_document(collection)
       for collection in ("entries", "treatments", "devicestatus", "profile", "food", "settings")},
}


def walk(patterns, prefix="", namespace=""):
    """(route text, qualified name, pattern) for every URL pattern, recursively."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            qualified = f"{namespace}:{ns}" if namespace and ns else (ns or namespace)
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), qualified)
        elif isinstance(entry, URLPattern):
            name = entry.name or ""
            yield prefix + str(entry.pattern), (f"{namespace}:{name}" if namespace else name), entry


def has_parameters(route: str) -> bool:
    return bool(re.search(r"<[^>]+>|\(\?P<", route))


def id_routes() -> list[tuple[str, str]]:
    return [(route, name) for route, name, _ in walk(get_resolver().url_patterns) if has_parameters(route)]


def is_admin(route: str) -> bool:
    return route.startswith("admin/")


@pytest.fixture
def owner_objects(db):
    """Person A with one real object of every kind an id route can name."""
    from tests.factories import PersonFactory

    a = PersonFactory()
    store_readings(a, recent_readings(6, seed=3), source="csv")
    batch = ImportBatch.objects.for_person(a).get()
    reading = Observation.objects.for_person(a).first()
    model = register_model(a)
    job = TrainingJob.objects.create(person=a, model=model, status="succeeded", trigger="api")
    log = forecast_for_person(a, source="api")
    feedback = PredictionFeedback.objects.create(person=a, prediction=log, helpful=True)
    staff = UserFactory(is_staff=True)
    token = signed_artifact_url(model, staff).rstrip("/").rsplit("/", 1)[-1]
    # A's reading and treatment as Nightscout API v3 names them (identifiers, not pks)
    v3_entry = f"{reading.pk:024x}"
    v3_treatment = "a-v3-bolus"
    store_treatments_document(a, {"eventType": "Correction Bolus", "insulin": 1.5, "identifier": v3_treatment,
                                  "date": int(reading.effective_at.timestamp() * 1000)}, channel=V3_UPLOAD)
    return {"person": a, "reading": reading, "batch": batch, "model": model, "job": job, "log": log,
            "feedback": feedback, "artifact_token": token, "v3_entry": v3_entry, "v3_treatment": v3_treatment,
            "treatment": Treatment.objects.for_person(a).get(source_identifier__startswith=v3_treatment)}


@pytest.fixture
def intruder(db):
    from tests.factories import PersonFactory

    b = PersonFactory()
    store_readings(b, recent_readings(2, seed=4), source="csv")  # B has data of their own
    b.owner.save()  # keep the session's auth hash valid after the factory's set_password
    session = Client()
    session.force_login(b.owner)
    return {"person": b, "token": token_client(b), "session": session}


def test_every_id_route_is_audited():
    unknown = sorted(name or route for route, name in id_routes() if not is_admin(route) and name not in ROUTE_AUDITS)
    assert not unknown, (
        f"id-bearing routes without a privacy audit: {unknown}. Add each to ROUTE_AUDITS in "
        "tests/audit/test_audit_isolation.py with a factory of person A's object."
    )
    stale = sorted(set(ROUTE_AUDITS) - {name for _, name in id_routes()})
    assert not stale, f"ROUTE_AUDITS names routes that no longer exist: {stale}"


def snapshot(objects) -> dict:
    a = objects["person"]
    return {
        "readings": Observation.objects.for_person(a).count(),
        "batches": list(ImportBatch.objects.for_person(a).values_list("pk", flat=True)),
        "models": list(MLModel.objects.for_person(a).values_list("pk", "status", "is_active")),
        "jobs": list(TrainingJob.objects.for_person(a).values_list("pk", "status")),
        "logs": PredictionLog.objects.for_person(a).count(),
        "feedback": list(PredictionFeedback.objects.filter(prediction__person=a).values_list("pk", "person_id", "helpful")),
        "readings_state": list(Observation.objects.for_person(a).values_list("pk", "status", "value_mg_dl")),
        "treatments": list(Treatment.objects.for_person(a).values_list("pk", "amount", "is_valid")),
    }


@pytest.mark.parametrize("name", sorted(ROUTE_AUDITS))
def test_another_persons_id_is_refused(name, owner_objects, intruder):
    audit = ROUTE_AUDITS[name]
    url = reverse(name, kwargs=audit.kwargs(owner_objects))
    if audit.owner_get_ok:
        owner = (audit.client or token_client)(owner_objects["person"])
        assert owner.get(url).status_code == 200, f"A's own {url} should answer 200: the factory is wrong"
    before = snapshot(owner_objects)
    clients = {"own": audit.client(intruder["person"])} if audit.client else intruder
    for auth in (("own",) if audit.client else ("token", "session")):
        client = clients[auth]
        for method in METHODS:
            body = audit.bodies.get(method)
            if auth == "token":
                response = getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)
            else:
                # The API reads JSON from a session too; the pages read form fields.
                as_json = {"content_type": "application/json"} if url.startswith(("/api/", "/ns/api/")) else {}
                response = getattr(client, method)(url, body, **as_json) if body is not None else getattr(client, method)(url)
            if auth == "token" and not url.startswith("/api/") and response.status_code == 302:
                # Pages do not read API tokens: the caller is anonymous and sent to the login.
                assert response["Location"].startswith("/login/"), response["Location"]
                continue
            assert response.status_code in REFUSED, (
                f"B's {method.upper()} {url} ({auth}) answered {response.status_code}: "
                f"{response.content[:300]!r}"
            )
    assert snapshot(owner_objects) == before, f"B's requests to {url} changed A's data"


def test_admin_id_routes_send_a_non_staff_user_to_the_admin_login(owner_objects, intruder):
    """Admin routes are staff-only: each id-bearing one, filled with A's ids, redirects B to the login."""
    models = {(m._meta.app_label, m._meta.model_name): m for m in admin.site._registry}
    a = owner_objects["person"]
    checked = 0
    for route, name, pattern in walk(get_resolver().url_patterns):
        if not (is_admin(route) and has_parameters(route) and name):
            continue
        params = set(pattern.pattern.regex.groupindex)
        kwargs = {}
        match = re.match(r"admin:(\w+?)_(\w+)_\w+$", name)
        model = models.get(match.groups()) if match else None
        obj = model.objects.filter(person=a).first() if model and hasattr(model, "person") else None
        for param in params:
            if param == "object_id":
                kwargs[param] = str(obj.pk if obj is not None else a.pk)
            elif param == "app_label":
                kwargs[param] = "observations"
            else:
                kwargs[param] = "1"
        try:
            url = reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            continue
        response = intruder["session"].get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (url, response.status_code)
        checked += 1
    assert checked >= 10, f"only {checked} admin id routes checked"
