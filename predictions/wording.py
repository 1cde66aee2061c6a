"""Every user-facing sentence about forecasts, in ONE place (API answers and pages both use it).

Safety rules for anything added here (tests/predictions/test_predictions_safety.py enforces them):
the forecast is information about likely glucose values, nothing more. No sentence may tell a
person what to do about their treatment or health (no doses, no food or insulin amounts, no
"go to hospital"/"call for help" wording) and none may say what condition a person has. Wording
says what the numbers are and, for errors, what to change in the request or the data.

Strings are lazy translations: the API renders them in the request's language (German via
locale/de), and `str()` gives the English text where a plain string is needed.
"""

from django.utils.translation import gettext_lazy as _

DISCLAIMER = _(
    "This forecast is informational only and is not medical advice. It is an estimate from "
    "past readings and any treatments you recorded, and can be wrong. Recorded insulin, meals "
    "and activity are used only as inputs: glucast never suggests how much insulin to take or "
    "what to eat. It does not replace your own glucose measurements or the guidance of your "
    "care team."
)

# What the interval columns mean (shown beside charts and documented in the API schema).
INTERVALS_EXPLAINED = _(
    "The ranges show where the value fell in 80% and 95% of comparable past forecasts for you; "
    "the actual value can still fall outside them."
)

# Shown when the simple trend model answered instead of the personal one.
BASELINE_NOTE = _(
    "This forecast comes from a simple trend model, not from your personal model, so its "
    "ranges are wider."
)
# Shown when the population model answered (no personal model yet, or it could not answer).
POPULATION_NOTE = _(
    "This forecast comes from a model learned from the readings of many people, not yet from "
    "your own; its ranges are set by how far it missed for people it had never seen. Your "
    "personal model takes over once it forecasts your readings better."
)
# Shown when there were too few recent readings for the full forecast (e.g. after a sensor change).
SHORT_HISTORY_NOTE = _(
    "There are fewer than two hours of readings since the last gap (for example after a sensor "
    "change), so this forecast only follows the trend of your last readings and its ranges are "
    "wider."
)
LONG_HORIZON_NOTE = _(
    "Forecasts several hours ahead are mostly based on your usual daily pattern and are "
    "much less certain than short ones."
)

# --- Error messages (each says what to fix) -------------------------------------------------
NO_READINGS = _(
    "There are no glucose readings to forecast from. Import recent CGM readings or send them "
    "in `history`."
)
STALE_READINGS = _(
    "The most recent reading is from %(last)s, %(age)d minutes before the forecast time; a "
    "forecast needs a reading from the last %(limit)d minutes. Import recent readings or send "
    "them in `history`."
)
TOO_FEW_READINGS = _(
    "Not enough readings before the forecast time to forecast from (%(detail)s). Send at least "
    "two readings at most 20 minutes apart from the last 30 minutes (the last two hours without "
    "gaps give a full forecast)."
)
BAD_HORIZONS = _(
    "`horizons` must be a non-empty list of distinct whole minutes, each a multiple of 5 from "
    "5 to 1440 (for example [30, 60, 120])."
)
BAD_HORIZON_ITEMS = _("These horizons are not allowed: %(items)s.")
BAD_RANGE = _('`range` accepts only "24h" (a point every 15 minutes over 24 hours).')
HORIZONS_AND_RANGE = _("Send either `horizons` or `range`, not both.")
BAD_UNIT = _('`unit` must be "mg/dL" or "mmol/L".')
BAD_HISTORY = _(
    "`history` must be a list of readings {\"effective_at\", \"value\", \"unit\"}; the rows "
    "listed below need fixing."
)
HISTORY_TOO_LONG = _("`history` may hold at most %(max)d readings; send only the last hours.")
HISTORY_ROW_SHAPE = _('each reading must be an object with "effective_at", "value" and optionally "unit".')
HISTORY_ROW_FUTURE = _("`effective_at` lies after the forecast time `as_of`.")
UNKNOWN_FIELDS = _("Unknown field(s): %(fields)s. Allowed: horizons, range, history, unit, as_of.")
FORECAST_UNAVAILABLE = _(
    "No forecast can be made right now because of a problem on our side; it has been logged. "
    "Please try again later."
)
BAD_AS_OF = _("`as_of` must be an ISO 8601 time with a UTC offset.")
TREATMENTS_NOT_ACCEPTED = _(
    "A forecast request cannot carry insulin, meals or other treatments: glucast forecasts only "
    "from what you have recorded before the forecast time, never from planned treatments."
)
TREATMENTS_MISSING = _(
    "Your model also learns from recorded insulin and meals, but none were recorded in the last "
    "%(hours)s hours: for that time this forecast rests on your glucose readings alone."
)
