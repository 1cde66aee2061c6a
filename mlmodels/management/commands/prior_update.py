"""Who is still on an older population prior than the one shipped, and (with --request) ask for
their retraining now, as the hourly schedule does (mlmodels/prior_updates.py).

    manage.py prior_update                      # who is on another prior, who is due
    manage.py prior_update --request            # request the due retrains now (same limits)
"""

from django.core.management.base import BaseCommand

from mlmodels.models import GLUCOSE_PREDICTION
from mlmodels.prior_updates import prior_update_plan, retrain_on_prior_change
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = "Show who is on an older population prior than the shipped one; --request retrains them."

    def add_arguments(self, parser):
        parser.add_argument("--model-type", default=GLUCOSE_PREDICTION)
        parser.add_argument("--request", action="store_true",
                            help="Request the due retrains now (trigger 'prior', within the queue's limits).")

    def handle(self, *args, model_type, request, **options):
        plan = prior_update_plan(model_type)
        if plan["shipped"] is None:
            self.stdout.write("No population prior is shipped or loadable here: nobody to move.")
            return
        old = plan["on_old_prior"]
        self.stdout.write(f"Shipped prior: {plan['shipped']}. On another prior: {len(old)} people.")
        for person_id, row in list(old.items())[:50]:
            state = ("due" if person_id in plan["due"] else "retrained, not deployed" if person_id in plan["retrained"]
                     else "tried recently" if person_id in plan["recently_tried"] else "inactive")
            self.stdout.write(
                f"  person {person_id}: version {row['version']} built on {row['built_on']}"
                f"{'' if row['active'] else ' (not active)'}, last reading {row['last_reading']}: {state}"
            )
        if len(old) > 50:
            self.stdout.write(f"  ... and {len(old) - 50} more")
        self.stdout.write(
            f"Due now: {len(plan['due'])} ({len(plan['open_jobs'])} with an open job); inactive: "
            f"{len(plan['inactive'])}; retrained but not deployed: {len(plan['retrained'])}; "
            f"tried in the last week: {len(plan['recently_tried'])}."
        )
        if not request:
            if plan["due"]:
                self.stdout.write("Nothing requested (the hourly schedule will; --request does it now).")
            return
        result = retrain_on_prior_change(model_type=model_type)
        self.stdout.write(self.style.SUCCESS(
            f"Requested {len(result['started'])} retrains (trigger 'prior'); {result['deferred']} left for the "
            "next run (the queue's share is full)."
        ))
