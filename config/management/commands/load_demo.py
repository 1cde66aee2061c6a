from django.conf import settings
from django.core.management.base import BaseCommand

from mlmodels.models import JobTrigger
from mlmodels.services import active_model, request_training
from config.demo import load_demo
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = (
        "Create or refresh the five demo people (the shared Broll 2021 data where it exists, "
        "synthetic CGM otherwise), shifted so their readings end now, and queue their training."
    )

    def handle(self, *args, **options):
        summary = load_demo()
        self.stdout.write(self.style.SUCCESS("Demo people (log in at /login/):"))
        for row in summary:
            if "skipped" in row:
                self.stdout.write(self.style.WARNING(f"  {row['username']:<10} left alone: {row['skipped']}"))
                continue
            if active_model(row["person"]) is None:
                request_training(row["person"], trigger=JobTrigger.OPERATOR)
            self.stdout.write(
                f"  {row['username']:<10} password {row['password']:<14} token {row['token']}  "
                f"({row['readings']} readings, {row['origin']})"
            )
        self.stdout.write("Models train in the background worker; forecasts come from the population prior until then.")
        if settings.GLUCAST_DEMO_LIVE:
            self.stdout.write("While `manage.py serve` runs, their recordings go on as live uploads every 5 minutes "
                              "(GLUCAST_DEMO_LIVE=0 stops that; docs/demo.md).")
