from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from config.account import delete_all_my_data
from config.demo import demo_people, load_demo
from config.demo_rollout import ReplayError, replay_release_rollout
from mlmodels.models import GLUCOSE_PREDICTION, Rollout
from mlmodels.rollouts import bump_generation
from persons.models import Person
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = (
        "Roll release 2 out through the lifecycle on the demo people: train release 1 and 2 on "
        "their earlier days, then replay the last days origin by origin with release 2 in shadow, "
        "then as a canary, and print the arm comparison from the matched outcomes. Resets the demo "
        "people's models and forecasts first (their logins and tokens stay)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--held-back-days", type=float, default=2.0,
                            help="days at the end replayed (default 2); the models train on the days before")
        parser.add_argument("--every-min", type=int, default=15, help="minutes between replayed origins (default 15)")
        parser.add_argument("--canary", type=int, default=None,
                            help="canary percentage of the second half (default: the smallest that puts half "
                                 "the demo people in the canary)")
        parser.add_argument("--shadow", type=int, default=100, help="shadow percentage (default 100)")
        parser.add_argument("--time-budget", type=float, default=None, help="training time budget per model, s")
        parser.add_argument("--as-deployed", action="store_true",
                            help="leave versions deploy-if-better rejected out of service (those people then "
                                 "stay out of the comparison) instead of putting them into service")
        parser.add_argument("--replace", action="store_true",
                            help="delete an existing glucose-prediction rollout and its history first")

    def handle(self, *args, held_back_days, every_min, canary, shadow, time_budget, replace, as_deployed, **options):
        if every_min < 5 or every_min % 5:
            raise CommandError("--every-min must be a multiple of 5 (the reading grid), at least 5.")
        if (canary is not None and not 0 < canary < 100) or not 0 < shadow <= 100:
            raise CommandError("--canary must be 1-99 and --shadow 1-100 (percent of people).")
        existing = Rollout.objects.filter(model_type=GLUCOSE_PREDICTION).first()
        if existing is not None and not replace:
            raise CommandError(
                f"{GLUCOSE_PREDICTION} already has a rollout ({existing}); add --replace to delete it and "
                "its history and start again from release 1."
            )
        self._reset_demo_people(existing)
        people = [row["person"] for row in load_demo()]
        self.stdout.write(f"Demo people: {', '.join(p.display_name or str(p) for p in people)}")
        try:
            result = replay_release_rollout(
                people, held_back=timedelta(days=held_back_days), every=timedelta(minutes=every_min),
                canary_percentage=canary, shadow_percentage=shadow, time_budget_s=time_budget,
                serve_rejected=not as_deployed,
                progress=self.stdout.write,
            )
        except ReplayError as exc:
            raise CommandError(str(exc)) from exc
        self._report(result, {p.pk: p for p in people})

    def _reset_demo_people(self, existing_rollout) -> None:
        """Models, jobs and forecasts of the demo people go (the replay trains its own); their
        logins stay, and their readings are loaded again by load_demo."""
        User = get_user_model()
        names = [demo.username for demo in demo_people(timezone.now())]
        with transaction.atomic():
            if existing_rollout is not None:
                existing_rollout.delete()
                bump_generation()
            for person in Person.objects.filter(owner__in=User.objects.filter(username__in=names)):
                delete_all_my_data(person)

    def _report(self, result: dict, people: dict) -> None:
        w = self.stdout.write
        w("")
        w(self.style.SUCCESS("Models trained on the days before the replay (deploy-if-better's verdict):"))
        for row in result["trained"]:
            parts = []
            for release in (1, 2):
                item = row[release]
                if item["version"] and item["activated_by_operator"]:
                    parts.append(f"release {release}: {item['version']} rejected, put into service")
                elif item["version"]:
                    parts.append(f"release {release}: {item['version']} {item['model_status']}")
                else:
                    parts.append(f"release {release}: {item['status']} ({item['reason']})")
            w(f"  {row['name']:<20} " + "; ".join(parts))
        shadow = result["shadow"]
        w("")
        w(self.style.SUCCESS(
            f"1. Shadow ({result['period']['start'][:16]} to {result['period']['middle'][:16]} UTC, an origin every "
            f"{result['every_min']:.0f} min): {shadow['counts']['forecasts']} forecasts served, "
            f"{shadow['counts']['shadows']} shadow forecasts ({shadow['counts']['shadow_failures']} could not be made)"
        ))
        self._arms(shadow["arms"], only=("stable",))
        self._paired(shadow["paired"])
        self._verdict(shadow["verdict"])
        canary = result["canary"]
        if canary is None:
            w(f"Rollout status: {result['status']} (no canary)")
            return
        w("")
        w(self.style.SUCCESS(
            f"2. Canary {canary['percentage']}% ({result['period']['middle'][:16]} to {result['period']['stop'][:16]} "
            f"UTC): {canary['counts']['forecasts']} forecasts served, {canary['counts']['shadows']} shadow forecasts"
        ))
        w("  " + "; ".join(f"{name}: {arm}" for name, arm in canary["people_by_arm"].items()))
        self._arms(canary["arms"])
        self._paired(canary["paired"], label="paired (shadow, people still on release 1)")
        self._verdict(canary["verdict"])
        w("")
        w(self.style.SUCCESS("Whole replay (both halves):"))
        self._paired(result["whole"]["paired"])
        w("")
        w(f"Rollout left in status '{result['status']}'; see /admin/mlmodels/rollout/ (events with reasons, the live "
          "arm table) and /admin/mlmodels/rollout/serving-now/. `bin/run` goes on serving it.")

    def _arms(self, comparison: dict, only=("stable", "canary")) -> None:
        w = self.stdout.write
        w("  arm      release  people  matched(30+60)  MAE 30   MAE 60   80% cover 30/60  95% cover 30/60  fallbacks")
        for name in only:
            arm = comparison["arms"][name]
            h30, h60 = arm["horizons"].get("30", {}), arm["horizons"].get("60", {})
            w(
                f"  {name:<8} {str(arm['release']):<8} {arm['n_people_matched']:>6}  {arm['n_matched']:>14}  "
                f"{_f(h30.get('mae_mg_dl')):>6}   {_f(h60.get('mae_mg_dl')):>6}   "
                f"{_f(h30.get('coverage_80'), 2):>5} / {_f(h60.get('coverage_80'), 2):<5}    "
                f"{_f(h30.get('coverage_95'), 2):>5} / {_f(h60.get('coverage_95'), 2):<5}    "
                f"{arm['n_fallbacks']}/{arm['n_forecasts']}"
            )

    def _paired(self, paired: dict, label: str = "paired (shadow)") -> None:
        w = self.stdout.write
        if not paired.get("n_pairs"):
            w(f"  {label}: no pairs")
            return
        for h, item in paired["horizons"].items():
            w(
                f"  {label} {h} min: {item['n_pairs']} pairs, release 1 MAE {_f(item['mae_served'])}, release 2 "
                f"{_f(item['mae_candidate'])}; 80% cover {_f(item['coverage_80_served'], 2)} vs "
                f"{_f(item['coverage_80_candidate'], 2)}"
            )
        rel, interval = paired.get("relative_difference"), paired.get("relative_interval")
        diff, diff_interval = paired.get("difference"), paired.get("difference_interval")
        text = f"  paired difference (release 2 - release 1, 30 and 60 min pooled): {diff:+.2f} mg/dL ({rel:+.1%})"
        if interval:
            text += (f", 95% interval over people {diff_interval[0]:+.2f} to {diff_interval[1]:+.2f} mg/dL "
                     f"({interval[0]:+.1%} to {interval[1]:+.1%})")
        w(text + f"; {paired['n_people']} people, {'enough' if paired['enough_evidence'] else 'not enough'} evidence")

    def _verdict(self, verdict: dict) -> None:
        w = self.stdout.write
        w(f"  automated decision: {verdict['decision']} — {'; '.join(verdict['reasons'])}")
        w(f"  with automatic promotion on it would: {verdict['with_auto_promote']}")


def _f(value, digits=1):
    return "–" if value is None else f"{value:.{digits}f}"
