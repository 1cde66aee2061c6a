"""Settings for bench/row_security_cost.py's comparison server only: glucast as it was before
row-level security — no per-request transaction and context, plain token authentication, and
the embedded server's superuser, whom policies skip. Never a way to run glucast."""

from config.settings import *  # noqa: F403
from config.settings import DATABASES, MIDDLEWARE, REST_FRAMEWORK

MIDDLEWARE = [m for m in MIDDLEWARE if m != "config.rls.RowSecurityMiddleware"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}
DATABASES["default"]["USER"] = "postgres"
