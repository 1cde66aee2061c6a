"""Operators: train (and deploy-if-better) per-person models, the same pipeline as the workers.

    python manage.py train_models alice bob       # these people (by username)
    python manage.py train_models --all           # everyone with a Person profile
"""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mlmodels.models import JobTrigger, metric_value
from mlmodels.services import train_person
from persons.models import Person
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = "Train per-person glucose models; a new version is activated only if it beats the active one."

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="*", metavar="USERNAME")
        parser.add_argument("--all", action="store_true", help="Train every person.")
        parser.add_argument(
            "--time-budget", type=float, default=None,
            help="Seconds of model selection per person (default: the pipeline's setting).",
        )

    def handle(self, *args, usernames, all, time_budget, **options):
        if bool(usernames) == bool(all):
            raise CommandError("Give one or more USERNAMEs, or --all (not both).")
        people = Person.objects.select_related("owner").order_by("owner__username")
        if not all:
            people = people.filter(owner__username__in=usernames)
            missing = sorted(set(usernames) - set(people.values_list("owner__username", flat=True)))
            if missing:
                raise CommandError(f"No person for username(s): {', '.join(missing)}")
        people = list(people)
        counts: dict[str, int] = {}
        progress = tqdm(people, desc="Training", unit="person", disable=not people)
        for person in progress:
            progress.set_postfix_str(person.owner.username)
            job = train_person(person, trigger=JobTrigger.OPERATOR, time_budget_s=time_budget)
            counts[job.status] = counts.get(job.status, 0) + 1
            tqdm.write(summary_line(person, job), file=self.stdout)
        totals = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nobody to train"
        self.stdout.write(self.style.SUCCESS(f"Done: {totals}."))


def summary_line(person, job) -> str:
    name = person.owner.username
    if job.status == "skipped":
        return f"{name}: skipped ({job.reason}) {_numbers(job.detail)}".rstrip()
    if job.status == "failed":
        return f"{name}: FAILED {job.error}"
    model = job.model
    state = "active" if model.is_active else model.status
    parts = [f"{name}: {model.version} {model.algorithm} {state}"]
    for horizon in (30, 60):
        mae = metric_value(model.metrics, horizon, "mae")
        base = metric_value(model.metrics, horizon, "mae", baseline=True)
        if mae is not None:
            vs = f" vs baseline {base:.1f}" if base is not None else ""
            parts.append(f"MAE{horizon} {mae:.1f}{vs}")
    comparison = model.comparison or {}
    if comparison.get("reference", {}).get("kind") in ("active", "population"):
        parts.append(
            f"(vs {comparison['reference']['kind']} {comparison['reference'].get('version')}: "
            f"{_fmt(comparison.get('candidate_score'))} vs {_fmt(comparison.get('reference_score'))})"
        )
    return " | ".join(parts)


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _numbers(detail) -> str:
    if not isinstance(detail, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in detail.items() if isinstance(v, (int, float, str)))
