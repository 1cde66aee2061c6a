"""Glucose units: the one mg/dL <-> mmol/L constant used everywhere in glucast.

Tools differ: Nightscout and iglu use 18, GluPredKit 18.018, and the molar mass of glucose
gives 18.016. We use 18.0 because the devices and the Nightscout ecosystem people compare
us with use it, so a value converted here matches what their receivers show. The difference
to 18.016 is under 0.1% — far below CGM measurement error.
"""

MGDL_PER_MMOLL = 18.0

MG_DL = "mg/dL"
MMOL_L = "mmol/L"
UNITS = (MG_DL, MMOL_L)


def mgdl_to_mmoll(value_mg_dl: float) -> float:
    return value_mg_dl / MGDL_PER_MMOLL


def mmoll_to_mgdl(value_mmol_l: float) -> float:
    return value_mmol_l * MGDL_PER_MMOLL


def to_mgdl(value: float, unit: str) -> float:
    if unit == MG_DL:
        return float(value)
    if unit == MMOL_L:
        return mmoll_to_mgdl(value)
    raise ValueError(f"unknown glucose unit {unit!r}; use {MG_DL!r} or {MMOL_L!r}")


def from_mgdl(value_mg_dl: float, unit: str) -> float:
    """A mg/dL value in `unit`, rounded as people read it (whole mg/dL, one decimal mmol/L)."""
    if unit == MG_DL:
        return round(float(value_mg_dl))
    if unit == MMOL_L:
        return round(mgdl_to_mmoll(value_mg_dl), 1)
    raise ValueError(f"unknown glucose unit {unit!r}; use {MG_DL!r} or {MMOL_L!r}")
