import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import Http404
from rest_framework.authtoken.models import Token

from persons.models import Person
from persons.roles import model_operators_group


@transaction.atomic
def create_person(
    username: str,
    *,
    password: str | None = None,
    display_name: str = "",
    time_zone: str = "Europe/Berlin",
    preferred_unit: str = "mg/dL",
    is_staff: bool = False,
    is_superuser: bool = False,
) -> tuple[Person, str, str]:
    """Create a user with their Person and API token. Returns (person, password, token key).

    `is_staff`: a model operator (staff, in the "Model operators" group, see persons.roles);
    `is_superuser`: every permission (also staff).
    """
    password = password or secrets.token_urlsafe(12)
    user = get_user_model().objects.create_user(
        username=username, password=password, is_staff=is_staff or is_superuser, is_superuser=is_superuser
    )
    if is_staff:
        user.groups.add(model_operators_group())
    person = Person(
        owner=user,
        display_name=display_name or username,
        time_zone=time_zone,
        preferred_unit=preferred_unit,
    )
    person.full_clean(exclude=["owner"])
    person.save()
    token, _ = Token.objects.get_or_create(user=user)
    return person, password, token.key


def person_for(user) -> Person:
    """The caller's Person, or 404 (a staff user without a Person has no personal data)."""
    person = Person.objects.for_user(user).select_related("owner").first()
    if person is None:
        raise Http404("No person profile for this account.")
    return person
