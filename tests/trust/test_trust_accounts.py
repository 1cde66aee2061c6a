"""Accounts that resist guessing and roles that mean what they say.

- Throttles count in the shared database (persons.throttling): the counter is a row every process sees.
- Logins (/login/ and /admin/login/) lock after GLUCAST_LOGIN_FAILURE_LIMIT failures per account
  and, separately, per address, answer 429 with a page that says why, and staff unlock them.
- `create_person --staff` is a model operator, not a superuser; a view-only staff member runs no
  lifecycle action; a model version's person is read-only in the admin.
"""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from mlmodels.models import ModelPin
from mlmodels.models import MLModel
from persons.roles import MODEL_OPERATOR_PERMISSIONS, MODEL_OPERATORS
from tests.factories import PersonFactory, UserFactory
from tests.lifecycle.conftest import logged_in, make_model

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"


def rates(settings, **scopes):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **scopes},
    }


# --- Throttles -------------------------------------------------------------------------------


def test_throttle_counters_live_in_the_shared_database(api, settings, one_rate_window):
    assert caches["default"].__class__.__name__ == "DatabaseCache"  # not Redis: PostgreSQL counts
    rates(settings, forecast="2/min")
    codes = [api.post("/api/predictions/glucose/", {}, format="json").status_code for _ in range(3)]
    assert codes[:2] == [422, 422] and codes[2] == 429  # 422: no readings yet; then throttled
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), max(count) FROM persons_ratecounter WHERE key LIKE %s", ["%throttle_forecast%"])
        assert cursor.fetchone() == (1, 3)  # one row, seen by every process and machine


def test_imports_are_throttled_reading_is_not(api, settings, one_rate_window):
    rates(settings, **{"import": "2/min"})
    body = [{"effective_at": "2025-03-01T08:00:00Z", "value": 120, "unit": "mg/dL"}]
    codes = [api.post("/api/observations/", body, format="json").status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    assert api.post("/api/fhir/Bundle", bundle, format="json").status_code == 429  # same scope
    assert api.get("/api/observations/").status_code == 200


def test_training_requests_are_throttled(api, settings, one_rate_window):
    rates(settings, train="1/min")
    assert api.post("/api/models/train/").status_code == 202
    assert api.post("/api/models/train/").status_code == 429


# --- Login guessing --------------------------------------------------------------------------


@pytest.fixture
def alice(db):
    person = PersonFactory(owner__username="alice")
    person.owner.save()
    return person.owner


def login(path, username, password, address="10.0.0.1"):
    client = Client(REMOTE_ADDR=address)
    return client.post(path, {"username": username, "password": password})


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_an_account_locks_after_the_failure_limit_even_across_addresses(alice, settings, path):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == settings.GLUCAST_LOGIN_FAILURE_LIMIT == 5
    for attempt in range(limit):
        response = login(path, "alice", "wrong", address=f"10.0.1.{attempt}")
        assert response.status_code in (200, 429)
    response = login(path, "alice", PASSWORD, address="10.0.2.1")  # the right password, too late
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in response.client.session


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_a_username_longer_than_any_accounts_is_refused_before_it_is_recorded(alice, path):
    # django-axes records a failed login's username in a varchar(255): 10,000 characters were a
    # DataError, a 500. Now a form error, and no attempt recorded.
    from axes.models import AccessAttempt

    response = login(path, "a" * 10_000, "wrong")
    assert response.status_code == 200 and response.context["form"].errors["username"]
    assert not AccessAttempt.objects.exists()
    if path == "/login/":  # alice is no staff member: the admin would refuse her anyway
        assert login(path, "alice", PASSWORD).status_code == 302  # ordinary logins unchanged


def test_an_address_locks_after_the_failure_limit_across_accounts(alice, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        login("/login/", f"guess{attempt}", "wrong", address="10.9.9.9")
    assert login("/login/", "alice", PASSWORD, address="10.9.9.9").status_code == 429
    assert login("/login/", "alice", PASSWORD, address="10.9.9.10").status_code == 302  # another address


def test_a_few_failures_do_not_lock_and_json_clients_get_json(alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login("/login/", "alice", "wrong").status_code == 200
    assert login("/login/", "alice", PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("/login/", "alice", "wrong")
    response = Client(REMOTE_ADDR="10.0.0.1").post(
        "/login/", {"username": "alice", "password": PASSWORD}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 429 and response.json()["code"] == "locked_out"


def test_an_operator_unlocks_an_account_in_the_admin(alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("/login/", "alice", "wrong")
    assert login("/login/", "alice", PASSWORD).status_code == 429
    call_command("create_person", "operator", "--staff", stdout=None)
    from django.contrib.auth import get_user_model

    operator = get_user_model().objects.get(username="operator")
    staff = logged_in(operator)
    attempts = list(AccessAttempt.objects.values_list("pk", flat=True))
    assert attempts
    response = staff.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert login("/login/", "alice", PASSWORD).status_code == 302


# --- Roles -----------------------------------------------------------------------------------


def test_create_person_staff_is_a_model_operator_not_a_superuser(capsys):
    call_command("create_person", "op", "--staff")
    call_command("create_person", "root", "--superuser")
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    op, root = users.get(username="op"), users.get(username="root")
    assert op.is_staff and not op.is_superuser
    assert [g.name for g in op.groups.all()] == [MODEL_OPERATORS]
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.filter(group__user=op)}
    assert granted == set(MODEL_OPERATOR_PERMISSIONS)
    assert not op.has_perm("observations.view_observation")  # raw readings are not the lifecycle's
    assert root.is_staff and root.is_superuser


def _changelist_actions(client) -> set[str]:
    response = client.get(reverse("admin:mlmodels_mlmodel_changelist"))
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:  # no action this user may run
        return set()
    return {name for name, _ in form.fields["action"].choices if name}


def test_view_only_staff_run_no_lifecycle_action(person):
    model_1 = make_model(person, "1.0.0", active=True)
    model_2 = make_model(person, "1.1.0", parent=model_1)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_mlmodel"))
    client = logged_in(viewer)
    assert _changelist_actions(client) == set()
    for action in ("activate", "rollback_to_previous", "archive", "pin"):
        response = client.post(
            reverse("admin:mlmodels_mlmodel_changelist"),
            {"action": action, "_selected_action": [model_2.pk], "reason": "sneaky"},
        )
        assert response.status_code in (200, 302, 403)
    model_1.refresh_from_db()
    model_2.refresh_from_db()
    assert model_1.is_active and not model_2.is_active and model_2.storage_path
    assert not ModelPin.objects.exists()


def test_an_operator_runs_the_lifecycle_actions(person):
    model_1 = make_model(person, "1.0.0", active=True)
    model_2 = make_model(person, "1.1.0", parent=model_1)
    call_command("create_person", "op", "--staff")
    from django.contrib.auth import get_user_model

    client = logged_in(get_user_model().objects.get(username="op"))
    assert _changelist_actions(client) == {"activate", "rollback_to_previous", "archive", "pin"}
    response = client.post(
        reverse("admin:mlmodels_mlmodel_changelist"),
        {"action": "activate", "_selected_action": [model_2.pk], "reason": "better"},
    )
    assert response.status_code == 302
    model_2.refresh_from_db()
    assert model_2.is_active


def test_a_model_versions_person_is_read_only(person, other_person):
    model = make_model(person, "1.0.0", active=True)
    root = UserFactory(is_staff=True, is_superuser=True)
    client = logged_in(root)
    url = reverse("admin:mlmodels_mlmodel_change", args=[model.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="person"' not in page.content.decode()
    client.post(url, {"person": other_person.pk, "is_active": "", "status": "archived"})
    model.refresh_from_db()
    assert model.person_id == person.pk and model.is_active
    assert client.get(reverse("admin:mlmodels_mlmodel_add")).status_code == 403
    assert MLModel.objects.count() == 1


def test_the_pages_upload_and_retrain_share_the_rates(person, settings, one_rate_window):
    rates(settings, **{"import": "1/min", "train": "1/min"})
    client = logged_in(person.owner)
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload():
        file = SimpleUploadedFile("r.csv", b"time,value\n2025-03-01T08:00:00Z,120\n")
        return client.post("/data/upload/", {"file": file})

    assert upload().status_code == 302
    assert upload().status_code == 429
    assert client.post("/retrain/").status_code == 302
    page = client.post("/retrain/", follow=True)
    assert "Too many retraining requests" in page.content.decode()


def test_behind_a_proxy_addresses_come_from_x_forwarded_for_and_cannot_be_forged(alice, settings):
    """With one trusted proxy the client is the right-most X-Forwarded-For entry: clients
    behind the same proxy are told apart, and what a client writes there itself is ignored."""
    settings.GLUCAST_TRUSTED_PROXY_COUNT = 1

    def login_via_proxy(forwarded, password):
        return Client(REMOTE_ADDR="10.0.0.254").post(
            "/login/", {"username": "alice", "password": password}, HTTP_X_FORWARDED_FOR=forwarded
        )

    for attempt in range(settings.AXES_FAILURE_LIMIT):  # one client guessing, forging a new address each time
        login_via_proxy(f"1.2.3.{attempt}, 203.0.113.9", "wrong-" + str(attempt))
    response = Client(REMOTE_ADDR="10.0.0.254").post(
        "/login/", {"username": f"other{attempt}", "password": "x"}, HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert response.status_code == 429  # the guessing address is locked, forged prefixes or not
    assert AccessAttempt.objects.filter(ip_address="203.0.113.9").exists()
    settings.GLUCAST_TRUSTED_PROXY_COUNT = 0
    assert login("/login/", "bob", "x", address="10.0.0.7").status_code == 200  # directly: REMOTE_ADDR
