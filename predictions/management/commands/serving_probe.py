"""Forecast people named on standard input, one JSON line out per line in — a long-lived process
that shows which version serves each person *now* (used to check that a promotion or rollback in
another process reaches this one on its next forecast).

    echo 12 | manage.py serving_probe
    {"person": 12, "prediction_id": 345, "version": "1.3.0", "variant": "stable", "arm": "stable", ...}

Each line is a real forecast (forecast_for_person, logged like an API call). "quit" ends it.
"""

import json
import sys

from django.core.management.base import BaseCommand
from persons.row_security import EveryoneCommand

from persons.models import Person
from predictions.errors import ForecastError
from predictions.services import forecast_for_person


class Command(EveryoneCommand, BaseCommand):
    help = "Forecast the person ids read from stdin and print what served each (JSON lines)."

    def handle(self, *args, **options):
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            if line == "quit":
                break
            try:
                person = Person.objects.get(pk=int(line))
                log = forecast_for_person(person)
                out = {
                    "person": person.pk,
                    "prediction_id": log.pk,
                    "version": log.model_version,
                    "variant": log.variant,
                    "arm": log.arm,
                    "rollout": log.rollout_id,
                    "fallback_reason": log.fallback_reason,
                }
            except (ValueError, Person.DoesNotExist, ForecastError) as exc:
                out = {"input": line, "error": f"{exc.__class__.__name__}: {exc}"}
            self.stdout.write(json.dumps(out))
            self.stdout.flush()
