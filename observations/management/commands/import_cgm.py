"""python manage.py import_cgm USERNAME FILE [--format auto|dexcom|libre|nightscout|fhir|csv]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from observations.importers import FORMAT_CHOICES
from observations.services import import_file
from observations.validation import ImportRejected
from persons.models import Person
from persons.row_security import EveryoneCommand


class Command(EveryoneCommand, BaseCommand):
    help = (
        "Import a CGM export for one person: Dexcom Clarity CSV, LibreView CSV, Nightscout "
        "entries JSON, FHIR Bundle JSON or plain CSV (time,value[,unit]). Naive times are read "
        "in the person's time zone. Re-importing the same file creates no duplicates."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMAT_CHOICES, default="auto")

    def handle(self, *args, username, file, format, **options):
        person = Person.objects.filter(owner__username=username).first()
        if person is None:
            raise CommandError(f"No person with the username {username!r} (create_person first).")
        if not file.is_file():
            raise CommandError(f"{file} is not a readable file.")
        try:
            result = import_file(person, file.read_bytes(), fmt=format, filename=file.name)
        except ImportRejected as exc:
            payload = exc.as_payload()
            lines = [f"{file.name}: {payload['detail']}"]
            lines += [f"  row {e['row']}, {e['field']}: {e['reason']}" for e in payload["errors"]]
            if payload["more_errors"]:
                lines.append(f"  ... and {payload['more_errors']} more errors")
            raise CommandError("\n".join(lines)) from None
        except Http404:
            raise CommandError(
                f"{file.name} names another patient as subject; import only {username}'s own data."
            ) from None
        batch = result.batch
        skipped = "".join(f"\n  skipped {n} {reason}" for reason, n in sorted(result.skipped_reasons.items()))
        self.stdout.write(
            f"Imported {file.name} ({result.format}) for {username}: "
            f"created {batch.n_created}, duplicates {batch.n_duplicates}, skipped {batch.n_skipped} "
            f"(import id {batch.pk}){skipped}"
        )
