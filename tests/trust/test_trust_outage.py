"""While PostgreSQL is unreachable every request answers 503 with Retry-After (JSON for the API, a
plain page for people), and the first request after it is back succeeds.

The outage is real: the connection is pointed at a closed TCP port on this machine (what a
stopped or failing-over server looks like to a client: connection refused), then restored.
"""

from __future__ import annotations

import socket

import pytest
from django.db import connection
from django.test import Client

from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nobody listens once the socket is closed


@pytest.fixture
def outage():
    """Enter with the database unreachable, leave with it back."""
    saved = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}

    class Outage:
        def start(self):
            connection.close()
            connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(closed_port())})

        def end(self):
            connection.close()
            connection.settings_dict.update(saved)

    switch = Outage()
    yield switch
    switch.end()


def test_every_request_answers_503_while_the_database_is_down_and_recovers(person, outage):
    person.owner.save()
    api = token_client(person)
    api.raise_request_exception = False
    browser = Client(raise_request_exception=False)
    browser.force_login(person.owner)
    assert api.get("/api/me/").status_code == 200

    outage.start()
    for response in (
        api.get("/api/me/"),
        api.post("/api/predictions/glucose/", {}, format="json"),
        api.post("/api/observations/", [{"effective_at": "2025-03-01T08:00:00Z", "value": 120}], format="json"),
    ):
        assert response.status_code == 503, response.content[:300]
        assert response["Retry-After"] == "5"
        assert response.json()["code"] == "database_unavailable"
    page = browser.get("/")
    assert page.status_code == 503 and page["Retry-After"] == "5"
    assert page["Content-Type"].startswith("text/html") and "Back in a moment" in page.content.decode()
    login = Client(raise_request_exception=False).post("/login/", {"username": "x", "password": "y"})
    assert login.status_code == 503

    outage.end()
    assert api.get("/api/me/").status_code == 200  # the first request after recovery
    assert browser.get("/").status_code == 200
