"""Retire a feature schema (release): say who is still on it, retrain them, then mark it retired.

    manage.py retire_schema glucose-prediction 1                       # the plan only
    manage.py retire_schema glucose-prediction 1 --apply --reason "..." [--wait 600 | --train-here]
"""

import getpass

from django.core.management.base import BaseCommand, CommandError

from mlmodels.retirement import retire_schema, retirement_plan
from mlmodels.rollouts import RolloutError
from mlmodels.tasks import run_training_job


class Command(BaseCommand):
    help = "Retire a feature schema: show who is on it, retrain them, then mark it retired."

    def add_arguments(self, parser):
        parser.add_argument("model_type")
        parser.add_argument("schema_version", type=int)
        parser.add_argument("--apply", action="store_true", help="Do it (without: only print the plan).")
        parser.add_argument("--reason", default="", help="Why (kept in the history).")
        parser.add_argument("--wait", type=float, default=0.0, help="Seconds to wait for the workers' jobs.")
        parser.add_argument("--train-here", action="store_true", help="Run the retraining jobs in this process.")

    def handle(self, *args, model_type, schema_version, apply, reason, wait, train_here, **options):
        plan = retirement_plan(model_type, schema_version)
        self.stdout.write(f"Schema {schema_version} of {model_type}: {plan['versions']} stored versions; "
                          f"{'known' if plan['known_to_code'] else 'NOT known'} to this code"
                          f"{'; already retired' if plan['already_retired'] else ''}.")
        self.stdout.write(f"  served by it now: {len(plan['people_served'])} people {plan['people_served'][:20]}")
        self.stdout.write(f"  active version on it: {len(plan['people_active'])} people {plan['people_active'][:20]}")
        for blocker in plan["blockers"]:
            self.stdout.write(f"  BLOCKED: {blocker}")
        self.stdout.write(
            f"Plan: retrain {len(plan['people_to_retrain'])} people (trigger 'retirement', compared with the "
            "baseline), then mark the schema retired once nobody is on it; its versions then never serve again."
        )
        if not apply:
            self.stdout.write("Nothing done (add --apply --reason '...').")
            return
        try:
            result = retire_schema(
                model_type, schema_version, actor=f"cli:{getpass.getuser()}", reason=reason,
                run_job=run_training_job if train_here else None, wait_s=wait,
            )
        except RolloutError as exc:
            raise CommandError(str(exc)) from exc
        for job in result["job_results"]:
            self.stdout.write(f"  job {job['id']} person {job['person_id']}: {job['status']} {job['reason']}")
        if not result["retired"]:
            raise CommandError(
                f"Not retired: {len(result['remaining'])} people are still on schema {schema_version} "
                f"{result['remaining'][:20]} (jobs still running, or their new model was not better than the "
                "baseline); run this again later."
            )
        self.stdout.write(self.style.SUCCESS(f"Schema {schema_version} of {model_type} retired."))
