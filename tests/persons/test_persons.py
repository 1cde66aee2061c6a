import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from persons.models import Person


@pytest.mark.django_db
def test_create_person_prints_token_last(capsys, monkeypatch):
    monkeypatch.delenv("GLUCAST_PASSWORD", raising=False)
    call_command("create_person", "alice", "--time-zone", "Europe/Berlin", "--unit", "mmol/L")
    lines = capsys.readouterr().out.strip().splitlines()
    person = Person.objects.get(owner__username="alice")
    assert lines[-1] == Token.objects.get(user=person.owner).key
    assert any(line.startswith("password: ") for line in lines)
    assert person.preferred_unit == "mmol/L"


@pytest.mark.django_db
def test_create_person_rejects_unknown_time_zone():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="IANA"):
        call_command("create_person", "bob", "--time-zone", "Mars/Olympus")
    assert not Person.objects.exists()


def test_me_requires_authentication(db):
    assert APIClient().get("/api/me/").status_code == 401


def test_me_shows_and_updates_only_own_person(api, person, other_person):
    body = api.get("/api/me/").json()
    assert body["id"] == person.id
    response = api.patch("/api/me/", {"time_zone": "Not/AZone"}, format="json")
    assert response.status_code == 400 and "time_zone" in response.json()
    response = api.patch("/api/me/", {"preferred_unit": "mmol/L"}, format="json")
    assert response.status_code == 200
    other_person.refresh_from_db()
    assert other_person.preferred_unit == "mg/dL"
