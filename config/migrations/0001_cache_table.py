"""The database cache's table (CACHES in config/settings.py): throttle counters live there so
every process and machine counts together. Created wherever migrate runs; a no-op when the cache
is Redis (GLUCAST_REDIS_URL)."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies: list = []
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
