import datetime as dt

import factory
from django.contrib.auth import get_user_model

from observations.models import Observation
from persons.models import Person


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    owner = factory.SubFactory(UserFactory)
    display_name = factory.LazyAttribute(lambda p: p.owner.username.title())
    time_zone = "Europe/Berlin"
    preferred_unit = "mg/dL"


class ObservationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Observation

    person = factory.SubFactory(PersonFactory)
    effective_at = factory.Sequence(
        lambda n: dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=5 * n)
    )
    value_mg_dl = 120.0
    original_value = factory.SelfAttribute("value_mg_dl")
    original_unit = "mg/dL"
    code = "99504-3"
    display = "Glucose [Mass/volume] in Interstitial fluid"
    source = "test"
