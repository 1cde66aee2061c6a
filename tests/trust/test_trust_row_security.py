"""PostgreSQL row-level security, the second wall: checked with raw SQL, below the ORM.

The per-person tables are found from the models (every model with a foreign key to Person, and
Person), so a new table is covered — and a new table without the policy fails here.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.utils import timezone

from config.models import DemoPerson
from config.rls import POLICY, per_person_tables
from mlmodels.lifecycle import activate_model  # noqa: F401  (the lifecycle app is loaded)
from mlmodels.models import TrainingJob
from mlmodels.rollouts import pin_person
from observations.episodes import refresh_windows
from observations.nightscout.models import NightscoutSource
from observations.nightscout.secrets import issue_secret
from observations.nightscout.tokens import issue_access_token
from observations.treatments.services import store_treatments
from observations.treatments.validation import RawTreatment
from persons.models import Person
from persons.row_security import everyone, for_person
from predictions.models import PredictionFeedback
from predictions.models import ModelPerformance
from predictions.services import forecast_for_person
from tests.factories import PersonFactory
from tests.mlmodels.conftest import store_readings
from tests.predictions.conftest import recent_readings, register_model

pytestmark = pytest.mark.django_db


def models_with_person_rows() -> list[tuple[str, str]]:
    """Independently of config.rls: (table, column) of Person and every FK to it."""
    found = [(Person._meta.db_table, "id")]
    for model in apps.get_models():
        for field in model._meta.concrete_fields:  # ForeignKey and OneToOneField alike
            if field.is_relation and field.related_model is Person:
                found.append((model._meta.db_table, field.column))
    return sorted(set(found))


def populate(person) -> None:
    """A row of the person in every per-person table, through the real services."""
    store_readings(person, recent_readings(6, seed=3), source="csv")
    refresh_windows(person)
    model = register_model(person)
    TrainingJob.objects.create(person=person, model=model, status="succeeded", trigger="api")
    log = forecast_for_person(person, source="api")
    PredictionFeedback.objects.create(person=person, prediction=log, helpful=True)
    ModelPerformance.objects.create(person=person, ml_model=model, model_version=model.version, horizon_min=30)
    pin_person(model, actor="test", reason="row security test")
    issue_secret(person=person)  # a Nightscout upload secret
    issue_access_token(person=person)  # a Nightscout API v3 access token
    NightscoutSource.objects.create(person=person, url="https://ns.example.org/", access_token="t" * 16)
    store_treatments(person=person, source="api", records=[
        RawTreatment(row=1, kind="bolus", time="2026-01-01T08:00:00Z", amount=3.0),
        RawTreatment(row=2, kind="carbs", time="2026-01-01T08:01:00Z", amount=40.0),
    ])
    DemoPerson.objects.create(person=person, origin="test", replay_from=timezone.now(),
                              next_reading_at=timezone.now(), loaded_at=timezone.now())


@pytest.fixture
def two_people(db):
    a, b = PersonFactory(), PersonFactory()
    populate(a)
    populate(b)
    return a, b


def count(table: str, column: str, person_id: int | None = None) -> int:
    with connection.cursor() as cursor:
        if person_id is None:
            cursor.execute(f'SELECT count(*) FROM "{table}"')
        else:
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" = %s', [person_id])
        return cursor.fetchone()[0]


def no_context():
    """The test harness's 'everyone' context off, for the rest of this test's transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('glucast.scope', '', true), set_config('glucast.person_id', '', true)")


def test_the_app_connects_as_a_role_the_policies_bind():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        name, superuser, bypass = cursor.fetchone()
    assert not superuser and not bypass, name


def test_every_per_person_table_has_forced_row_security_and_the_policy():
    tables = models_with_person_rows()
    assert per_person_tables() == tables
    assert len(tables) >= 10
    with connection.cursor() as cursor:
        for table, _column in tables:
            cursor.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = %s", [table]
            )
            assert cursor.fetchone() == (True, True), table
            cursor.execute("SELECT count(*) FROM pg_policies WHERE tablename = %s AND policyname = %s", [table, POLICY])
            assert cursor.fetchone()[0] == 1, table


def test_without_context_raw_sql_sees_no_per_person_row(two_people):
    populated = {table: count(table, column) for table, column in models_with_person_rows()}
    assert all(populated.values()), populated  # the harness's 'everyone' sees them all
    no_context()
    for table, column in models_with_person_rows():
        assert count(table, column) == 0, table


def test_with_a_persons_context_raw_sql_sees_only_their_rows(two_people):
    a, b = two_people
    no_context()
    for person, other in ((a, b), (b, a)):
        with for_person(person.pk):
            for table, column in models_with_person_rows():
                mine = count(table, column)
                assert mine > 0, table
                assert count(table, column, person.pk) == mine, table
                assert count(table, column, other.pk) == 0, table
    for table, column in models_with_person_rows():
        assert count(table, column) == 0, table  # the block ended: nothing again


def test_a_person_context_cannot_write_another_persons_rows(two_people):
    a, b = two_people
    no_context()
    with for_person(a.pk):
        with pytest.raises((ProgrammingError, IntegrityError)), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO mlmodels_trainingjob (person_id, model_type, status, reason, trigger, attempts, "
                    "detail, error, task_id, created_at) VALUES (%s, 'x', 'failed', '', 'api', 0, '{}', '', '', now())",
                    [b.pk],
                )
        with pytest.raises((ProgrammingError, IntegrityError)), transaction.atomic():
            with connection.cursor() as cursor:  # nor add treatments to another person
                cursor.execute(
                    "INSERT INTO observations_treatment (person_id, kind, effective_at, amount, unit, is_valid, "
                    "device, source, source_identifier, client_fields, created_at, modified_at) "
                    "VALUES (%s, 'bolus', now(), 5, 'U', true, '', 'api', 'x', '{}', now(), now())",
                    [b.pk],
                )
        with connection.cursor() as cursor:
            cursor.execute("UPDATE observations_treatment SET amount = 99 WHERE person_id = %s", [b.pk])
            assert cursor.rowcount == 0
            cursor.execute("UPDATE observations_observation SET value_mg_dl = 1 WHERE person_id = %s", [b.pk])
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM observations_observation WHERE person_id = %s", [b.pk])
            assert cursor.rowcount == 0
    with everyone("check"):
        assert count("observations_observation", "person_id", b.pk) > 0


def test_a_missed_ownership_filter_still_shows_only_the_callers_rows(two_people, monkeypatch):
    """The second wall: with the ownership queryset broken on purpose (a missed filter), the
    API still answers person A with A's readings only — the middleware's transaction and the
    token authentication set A's context, and the policies do the rest."""
    from observations.models import Observation
    from tests.conftest import token_client

    a, b = two_people
    own = set(Observation.objects.filter(person=a).values_list("id", flat=True))
    assert Observation.objects.filter(person=b).exists()
    monkeypatch.setattr(type(Observation.objects.all()), "for_user", lambda self, user: self.all())
    no_context()
    response = token_client(a).get("/api/observations/?limit=1000")
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == own
    # After the request the connection is back to what it was here (no context).
    assert count("observations_observation", "person_id") == 0
