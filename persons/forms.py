"""The login forms (the site's /login/ and the admin's): a username longer than any account's
is a form error before authenticate() runs. django-axes records every failed login with its
username in a varchar(255), so a 10,000-character username was a DataError, a 500; Django's
AuthenticationForm sets the field's max_length but adds no validator for it."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator


class _BoundedUsername:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["username"]
        field.validators.append(MaxLengthValidator(field.max_length))


class LoginForm(_BoundedUsername, AuthenticationForm):
    pass


class AdminLoginForm(_BoundedUsername, AdminAuthenticationForm):
    pass
