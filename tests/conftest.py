import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db.backends.signals import connection_created
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import PersonFactory

BROLL_CSV = Path(settings.GLUCAST_SHARED_DATA) / "broll2021_cgm.csv"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _test_harness_sees_everyone(sender, connection, **kwargs):
    """Row-level security binds the test process's role too. Set-up and assertions in tests
    read and write many people's rows, so each test connection starts in the explicit context
    for everyone (session-level). Requests through the test client set their own person's
    context in their transaction (and put this one back after); the row-security tests clear
    it to check what a connection without context sees; workers set their own."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('glucast.scope', 'all', false)")


connection_created.connect(_test_harness_sees_everyone, dispatch_uid="glucast-test-harness-everyone")


@pytest.fixture
def broll_csv_path() -> Path:
    if not BROLL_CSV.exists():
        pytest.skip(
            f"the shared Broll 2021 CGM file is not at {BROLL_CSV} "
            "(set GLUCAST_SHARED_DATA to the folder holding broll2021_cgm.csv)"
        )
    return BROLL_CSV


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def person(db):
    return PersonFactory()


@pytest.fixture
def other_person(db):
    return PersonFactory()


def token_client(person) -> APIClient:
    """An API client authenticated the way API consumers are: with the person's token."""
    token, _ = Token.objects.get_or_create(user=person.owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(person) -> APIClient:
    return token_client(person)


@pytest.fixture
def other_api(other_person) -> APIClient:
    return token_client(other_person)


@pytest.fixture
def one_rate_window(monkeypatch):
    """The shared throttles' clock stands still for the test, so all its requests count in one
    window. Those throttles count in fixed windows (persons/throttling.py): requests straddling a
    window's end (a per-minute rate tested at hh:mm:59.7) started a fresh count, and the request
    expected to be refused passed."""
    from persons.throttling import SharedRateThrottle

    frozen = time.time()
    monkeypatch.setattr(SharedRateThrottle, "timer", staticmethod(lambda: frozen))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness costs ~1 s per created user; tests need no brute-force resistance.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def artifact_root(tmp_path, settings):
    """Every test's model artifacts go to its own temporary folder, never var/artifacts."""
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


@pytest.fixture
def without_prior(settings):
    """The population prior switched off (GLUCAST_POPULATION_PRIOR=0): AR2 answers people without
    a model and training produces release 1, as before the prior shipped."""
    from predictions.services import reset_population_forecaster

    settings.GLUCAST_POPULATION_PRIOR = False
    reset_population_forecaster()
    yield
    reset_population_forecaster()
