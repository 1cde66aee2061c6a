"""Operate rollouts from a shell (the same services as the admin buttons; every change needs a
reason and is recorded as a RolloutEvent with the actor "cli:<user>"). A predictions command:
`show` and `evaluate` judge the arms by their realized outcomes.

    manage.py rollout show [MODEL_TYPE]
    manage.py rollout create MODEL_TYPE --stable 1 --reason "..."
    manage.py rollout candidate MODEL_TYPE 2 [--percentage 10] --reason "..."   (--clear to remove)
    manage.py rollout percentage MODEL_TYPE 20 --reason "..."
    manage.py rollout shadow MODEL_TYPE 30 --reason "..."       candidate computed in shadow for 30%
    manage.py rollout promote MODEL_TYPE --reason "..."
    manage.py rollout rollback MODEL_TYPE --reason "..."        back to the previous stable release
    manage.py rollout stop MODEL_TYPE --reason "..."            canary to 0% (status rolled back)
    manage.py rollout evaluate                                  run the automated decisions now
    manage.py rollout pin PERSON_ID VERSION [--model-type T] --reason "..."
    manage.py rollout unpin PERSON_ID [--model-type T] --reason "..."
    manage.py rollout person-rollback PERSON_ID [--model-type T] --reason "..."  previous version
    manage.py rollout which PERSON_ID [PERSON_ID ...]           what serves them now, and why
"""

import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from mlmodels import lifecycle, rollouts
from mlmodels.models import GLUCOSE_PREDICTION, MLModel, Rollout
from persons.models import Person
from predictions import decisions
from predictions.monitoring import arm_comparison
from predictions.shadow import paired_comparison
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = "Show and change model rollouts, pins and per-person versions (every change needs --reason)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        show = sub.add_parser("show")
        show.add_argument("model_type", nargs="?")
        create = sub.add_parser("create")
        create.add_argument("model_type")
        create.add_argument("--stable", type=int, required=True)
        candidate = sub.add_parser("candidate")
        candidate.add_argument("model_type")
        candidate.add_argument("release", type=int, nargs="?")
        candidate.add_argument("--percentage", type=int, default=0)
        candidate.add_argument("--shadow", type=int, default=0)
        candidate.add_argument("--clear", action="store_true")
        percentage = sub.add_parser("percentage")
        percentage.add_argument("model_type")
        percentage.add_argument("percentage", type=int)
        shadow = sub.add_parser("shadow")
        shadow.add_argument("model_type")
        shadow.add_argument("percentage", type=int)
        for name in ("promote", "rollback", "stop"):
            sub.add_parser(name).add_argument("model_type")
        sub.add_parser("evaluate")
        pin = sub.add_parser("pin")
        pin.add_argument("person_id", type=int)
        pin.add_argument("version")
        for name in ("unpin", "person-rollback"):
            sub.add_parser(name).add_argument("person_id", type=int)
        which = sub.add_parser("which")
        which.add_argument("person_ids", type=int, nargs="+")
        for parser_ in sub.choices.values():
            parser_.add_argument("--reason", default="")
            parser_.add_argument("--model-type", dest="type_option", default=GLUCOSE_PREDICTION)

    def handle(self, *args, **options):
        action = options["action"]
        actor = f"cli:{getpass.getuser()}"
        reason = options["reason"]

        def rollout_of(model_type):
            rollout = Rollout.objects.filter(model_type=model_type).first()
            if rollout is None:
                raise CommandError(f"No rollout for {model_type}; create one with `rollout create`.")
            return rollout

        def person_of(pk):
            person = Person.objects.filter(pk=pk).first()
            if person is None:
                raise CommandError(f"No person with id {pk}.")
            return person

        try:
            if action == "show":
                queryset = Rollout.objects.all()
                if options["model_type"]:
                    queryset = queryset.filter(model_type=options["model_type"])
                for rollout in queryset:
                    self._show(rollout)
                if not queryset:
                    self.stdout.write("No rollouts: everyone is served their active model.")
                return
            if action == "create":
                result = rollouts.create_rollout(options["model_type"], options["stable"], actor=actor, reason=reason)
            elif action == "candidate":
                release = None if options["clear"] else options["release"]
                if release is None and not options["clear"]:
                    raise CommandError("Give the candidate release, or --clear.")
                result = rollouts.set_candidate(
                    rollout_of(options["model_type"]), release, percentage=options["percentage"],
                    shadow_percentage=options["shadow"], actor=actor, reason=reason,
                )
            elif action == "percentage":
                result = rollouts.set_canary_percentage(
                    rollout_of(options["model_type"]), options["percentage"], actor=actor, reason=reason
                )
            elif action == "shadow":
                result = rollouts.set_shadow_percentage(
                    rollout_of(options["model_type"]), options["percentage"], actor=actor, reason=reason
                )
            elif action == "promote":
                result = rollouts.promote_candidate(rollout_of(options["model_type"]), actor=actor, reason=reason)
            elif action == "rollback":
                result = rollouts.rollback_to_previous_stable(
                    rollout_of(options["model_type"]), actor=actor, reason=reason
                )
            elif action == "stop":
                result = rollouts.stop_canary(rollout_of(options["model_type"]), actor=actor, reason=reason)
            elif action == "evaluate":
                for verdict in decisions.evaluate_rollouts():
                    self.stdout.write(json.dumps(verdict))
                return
            elif action == "pin":
                mlmodel = MLModel.objects.filter(
                    person_id=options["person_id"], model_type=options["type_option"], version=options["version"]
                ).first()
                if mlmodel is None:
                    raise CommandError(f"Person {options['person_id']} has no version {options['version']}.")
                result = rollouts.pin_person(mlmodel, actor=actor, reason=reason)
            elif action == "unpin":
                removed = rollouts.unpin_person(
                    person_of(options["person_id"]), options["type_option"], actor=actor, reason=reason
                )
                result = "pin removed" if removed else "there was no pin"
            elif action == "person-rollback":
                result = lifecycle.rollback_person_model(
                    person_of(options["person_id"]), options["type_option"], actor=actor, reason=reason
                )
                result = f"person {options['person_id']} now has {result.version} active"
            elif action == "which":
                choices = rollouts.assign_models(options["person_ids"], options["type_option"])
                for pid, choice in choices.items():
                    self.stdout.write(json.dumps({
                        "person": pid,
                        "version": choice.mlmodel.version if choice.mlmodel else None,
                        "variant": str(choice.variant),
                        "arm": choice.arm,
                        "rollout": choice.rollout_id,
                    }))
                return
        except rollouts.RolloutError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(str(result)))

    def _show(self, rollout):
        self.stdout.write(self.style.MIGRATE_HEADING(str(rollout)))
        self.stdout.write(f"  status: {rollout.get_status_display()} — {rollout.status_reason or '-'}")
        self.stdout.write(f"  previous stable: {rollout.previous_stable_release}  auto-promote: {rollout.auto_promote}")
        if rollout.candidate_release is not None:
            comparison = arm_comparison(rollout)
            for arm, figures in comparison["arms"].items():
                evidence = "enough evidence" if figures["enough_evidence"] else "NOT ENOUGH EVIDENCE YET"
                self.stdout.write(
                    f"  {arm:7s} release {figures['release']}: {figures['n_forecasts']} forecasts, "
                    f"MAE {figures['mae']} mg/dL from {figures['n_matched']} outcomes, "
                    f"errors {figures['error_rate']}, fallbacks {figures['fallback_rate']} — {evidence}"
                )
            paired = paired_comparison(rollout)
            if paired["n_pairs"]:
                evidence = "enough evidence" if paired["enough_evidence"] else "NOT ENOUGH EVIDENCE YET"
                self.stdout.write(
                    f"  shadow  paired: candidate MAE {paired['mae_candidate']} vs served {paired['mae_served']} mg/dL, "
                    f"difference {paired['difference']} (95% interval {paired['difference_interval']}) on "
                    f"{paired['n_pairs']} pairs from {paired['n_people']} people — {evidence}"
                )
        for event in rollout.events.all()[:5]:
            self.stdout.write(f"  {event.created_at:%Y-%m-%d %H:%M} {event.actor_name}: {event.action} — {event.reason}")
