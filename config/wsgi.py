"""WSGI entry point: token API calls take a lean middleware chain (config/lean_wsgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
_full = get_wsgi_application()

from config.lean_wsgi import RoutingApplication  # noqa: E402 - needs the settings configured above

application = RoutingApplication(_full)
