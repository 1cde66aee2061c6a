from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-level operations (the `serve` supervisor); holds no models."""

    name = "config"
    verbose_name = "glucast"
