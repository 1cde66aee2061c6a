from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-level operations (the `serve` supervisor, row-level security, the demo); its one
    model marks the people the demo loader made (config/models.py)."""

    name = "config"
    verbose_name = "glucast"

    def ready(self):
        from django.db.models.signals import post_migrate

        from config.rls import apply_after_migrate

        # every migrate leaves every per-person table under row-level security
        post_migrate.connect(apply_after_migrate, dispatch_uid="glucast-row-level-security")
