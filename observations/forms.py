"""Forms of the observations pages: the insights period and the CGM upload."""

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from observations.importers import AUTO, FORMAT_NAMES, FORMATS
from observations.pages import DEFAULT_PERIOD_DAYS, MAX_PERIOD_DAYS
from observations.validation import earliest_reading_time


class InsightsPeriodForm(forms.Form):
    """A period of whole local days; empty = the last 14 days up to now."""

    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, tz, now=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = tz
        self.now = now or timezone.now()

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if self.errors:
            return cleaned
        today = self.now.astimezone(self.tz).date()
        if start is None and end is None:
            cleaned["start_at"] = self.now - dt.timedelta(days=DEFAULT_PERIOD_DAYS)
            cleaned["end_at"] = self.now
            cleaned["start"] = cleaned["start_at"].astimezone(self.tz).date()
            cleaned["end"] = today
            return cleaned
        end = end or today
        earliest = earliest_reading_time().date()
        # The end is checked before a default start is counted back from it: 0001-01-01 minus
        # the default period was an OverflowError, a 500.
        if end < earliest or end > today + dt.timedelta(days=1):
            raise self._outside(earliest)
        start = start or end - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        if start < earliest:
            raise self._outside(earliest)
        if end < start:
            raise forms.ValidationError(_("The end date must not be before the start date."))
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise forms.ValidationError(
                _("Choose a period of at most %(days)d days.") % {"days": MAX_PERIOD_DAYS}
            )
        cleaned["start"], cleaned["end"] = start, end
        cleaned["start_at"] = dt.datetime.combine(start, dt.time(), tzinfo=self.tz)
        cleaned["end_at"] = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=self.tz)
        return cleaned


    @staticmethod
    def _outside(earliest: dt.date) -> forms.ValidationError:
        return forms.ValidationError(
            _("Choose dates between %(earliest)s and today.") % {"earliest": earliest.isoformat()}
        )


class UploadForm(forms.Form):
    file = forms.FileField(label=_("CGM export file"))
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[(AUTO, _("Recognise automatically"))] + [(name, FORMAT_NAMES[name]) for name in FORMATS],
        initial=AUTO,
        required=False,
    )


class NightscoutSourceForm(forms.Form):
    url = forms.URLField(
        label=_("Your Nightscout address"), max_length=300, assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.herokuapp.com/"}),
    )
    access_token = forms.CharField(
        label=_("Access token or API secret"), max_length=200, required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("A read-only access token (Admin tools → Subjects) is best."),
    )
