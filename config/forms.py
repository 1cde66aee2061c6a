"""Forms of the site layer: confirming whole-account deletion."""

from django import forms
from django.utils.translation import gettext_lazy as _


class DeleteAllForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("I understand that all my readings, imports, models, forecasts and feedback will be deleted for good."),
        required=True,
    )
