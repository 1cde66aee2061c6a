"""Forecast people with fresh data and store the forecasts (what the 5-minute schedule runs)."""

from django.core.management.base import BaseCommand, CommandError

from persons.models import Person
from predictions.batch import predict_batch
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = "Forecast every person with a reading in the last 30 minutes (--all) or the named users."

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="*", metavar="USERNAME")
        parser.add_argument("--all", action="store_true", help="every person with fresh data")

    def handle(self, *args, usernames, all, **options):
        if bool(usernames) == bool(all):
            raise CommandError("name one or more USERNAMEs, or pass --all (not both).")
        persons = None
        if usernames:
            found = {p.owner.username: p for p in Person.objects.filter(owner__username__in=usernames).select_related("owner")}
            missing = sorted(set(usernames) - set(found))
            if missing:
                raise CommandError(f"no person for user(s): {', '.join(missing)}")
            persons = list(found.values())
        result = predict_batch(persons)
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.n_forecasts} forecasts stored for {result.n_fresh} people with fresh data "
                f"(of {result.n_people}); {result.n_unchanged} without a new reading since their last "
                f"batch forecast, {result.n_too_few_readings} with too few readings, "
                f"{result.n_fallbacks} answered by the baseline after a model failure; "
                f"{result.n_groups} model groups, {result.n_model_loads} model loads, {result.seconds:.2f} s."
            )
        )
