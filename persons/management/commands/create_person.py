import os

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from persons.services import create_person
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = (
        "Create a user with their Person and API token. The password comes from "
        "GLUCAST_PASSWORD or is generated and printed; the token is the last line of output."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--staff", action="store_true",
            help="a model operator: admin access with the lifecycle's permissions (group 'Model operators')",
        )
        parser.add_argument("--superuser", action="store_true", help="every permission (use sparingly)")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--time-zone", default="Europe/Berlin")
        parser.add_argument("--unit", default="mg/dL", choices=["mg/dL", "mmol/L"])

    def handle(self, *args, username, staff, superuser, display_name, time_zone, unit, **options):
        if get_user_model().objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} already exists")
        given_password = os.environ.get("GLUCAST_PASSWORD")
        try:
            person, password, token = create_person(
                username,
                password=given_password,
                display_name=display_name,
                time_zone=time_zone,
                preferred_unit=unit,
                is_staff=staff,
                is_superuser=superuser,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        role = "superuser " if superuser else "staff (model operator) " if staff else ""
        self.stdout.write(f"created {role}person {person.display_name!r} (user {username})")
        if not given_password:
            self.stdout.write(f"password: {password}")
        self.stdout.write(token)
