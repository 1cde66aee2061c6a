"""Treatment kinds: canonical units, plausibility bounds and their FHIR alignment.

FHIR alignment, and why:
- carbohydrate intake, steps and heart rate are measured or estimated quantities about the
  person, so they are Observations, each with its LOINC code: 9059-7 (Carbohydrate intake
  Estimated, g), 55423-8 (Number of steps in unspecified time Pedometer, {steps}) and 8867-4
  (Heart rate, /min).
- insulin is a drug given, so it is a MedicationAdministration (status completed, dosage.dose
  in U for a bolus, dosage.rateQuantity in U/h for a basal rate, effectivePeriod for a temporary
  basal or an extended bolus). An Observation would claim insulin was *measured*; a
  MedicationAdministration says what FHIR servers, apps and clinicians expect: this much of this
  insulin was delivered then. No standard code names "rapid-acting insulin" as a class without
  a product, so the insulin kind travels as medicationCodeableConcept text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

LOINC_SYSTEM = "http://loinc.org"

BOLUS = "bolus"
BASAL_RATE = "basal_rate"
TEMP_BASAL = "temp_basal"
CARBS = "carbs"
STEPS = "steps"
HEART_RATE = "heart_rate"
KINDS = (BOLUS, BASAL_RATE, TEMP_BASAL, CARBS, STEPS, HEART_RATE)
INSULIN_KINDS_OF_TREATMENT = (BOLUS, BASAL_RATE, TEMP_BASAL)

# UCUM units, canonical per kind.
UNIT_U = "U"
UNIT_U_PER_H = "U/h"
UNIT_G = "g"
UNIT_STEPS = "{steps}"
UNIT_PER_MIN = "/min"

# Insulin kinds (the curves differ: oref0/Loop peak ~75 min rapid, ~55 min ultra-rapid).
RAPID = "rapid"  # insulin aspart, lispro, glulisine (NovoRapid, Humalog, Apidra)
ULTRA_RAPID = "ultra_rapid"  # faster aspart (Fiasp), lispro-aabc (Lyumjev)
REGULAR = "regular"  # human regular insulin (Actrapid, Humulin R)
INTERMEDIATE = "intermediate"  # NPH
LONG_ACTING = "long_acting"  # glargine, detemir, degludec
INSULIN_KINDS = (RAPID, ULTRA_RAPID, REGULAR, INTERMEDIATE, LONG_ACTING)
INSULIN_KIND_TEXT = {
    RAPID: "insulin, rapid-acting",
    ULTRA_RAPID: "insulin, ultra-rapid-acting",
    REGULAR: "insulin, regular (short-acting)",
    INTERMEDIATE: "insulin, intermediate-acting (NPH)",
    LONG_ACTING: "insulin, long-acting",
}

# Bolus subtypes where the source says (Nightscout eventType, AndroidAPS' bolus type).
MEAL = "meal"
CORRECTION = "correction"
SMB = "smb"  # AndroidAPS' super micro bolus (automatic)
EXTENDED = "extended"  # the extended part of a combo / square-wave bolus (has a duration)
BOLUS_TYPES = (MEAL, CORRECTION, SMB, EXTENDED)

MAX_DURATION = timedelta(hours=24)
# A person walks or runs at most about 250 steps a minute; 300 leaves room for clocks.
MAX_STEPS_PER_MINUTE = 300


@dataclass(frozen=True)
class TreatmentKind:
    kind: str
    unit: str  # canonical UCUM unit
    low: float  # accepted amount range, in `unit`, inclusive
    high: float
    duration: str  # "required", "optional" or "none"
    fhir_resource: str  # Observation or MedicationAdministration
    loinc: str = ""  # for Observations
    display: str = ""


TREATMENT_KINDS: dict[str, TreatmentKind] = {
    k.kind: k
    for k in (
        TreatmentKind(BOLUS, UNIT_U, 0.0, 100.0, "optional", "MedicationAdministration",
                      display="Insulin bolus"),
        TreatmentKind(BASAL_RATE, UNIT_U_PER_H, 0.0, 35.0, "optional", "MedicationAdministration",
                      display="Basal insulin rate"),
        TreatmentKind(TEMP_BASAL, UNIT_U_PER_H, 0.0, 35.0, "required", "MedicationAdministration",
                      display="Temporary basal insulin rate"),
        TreatmentKind(CARBS, UNIT_G, 0.0, 500.0, "optional", "Observation", "9059-7",
                      "Carbohydrate intake Estimated"),
        TreatmentKind(STEPS, UNIT_STEPS, 0.0, 100_000.0, "required", "Observation", "55423-8",
                      "Number of steps in unspecified time Pedometer"),
        TreatmentKind(HEART_RATE, UNIT_PER_MIN, 20.0, 250.0, "optional", "Observation", "8867-4",
                      "Heart rate"),
    )
}
LOINC_TO_KIND = {k.loinc: k.kind for k in TREATMENT_KINDS.values() if k.loinc}

# How sources spell the units (lower case, spaces removed) -> UCUM.
UNIT_ALIASES: dict[str, str] = {
    "u": UNIT_U, "iu": UNIT_U, "[iu]": UNIT_U, "unit": UNIT_U, "units": UNIT_U, "{units}": UNIT_U,
    "u/h": UNIT_U_PER_H, "iu/h": UNIT_U_PER_H, "[iu]/h": UNIT_U_PER_H, "u/hr": UNIT_U_PER_H,
    "units/h": UNIT_U_PER_H, "units/hour": UNIT_U_PER_H, "u/hour": UNIT_U_PER_H,
    "g": UNIT_G, "gram": UNIT_G, "grams": UNIT_G,
    "{steps}": UNIT_STEPS, "steps": UNIT_STEPS, "step": UNIT_STEPS, "{step}": UNIT_STEPS,
    "/min": UNIT_PER_MIN, "bpm": UNIT_PER_MIN, "beats/min": UNIT_PER_MIN, "{beats}/min": UNIT_PER_MIN,
    "1/min": UNIT_PER_MIN,
}

INSULIN_KIND_ALIASES: dict[str, str] = {
    "rapid": RAPID, "rapid-acting": RAPID, "rapid_acting": RAPID, "novorapid": RAPID,
    "novolog": RAPID, "humalog": RAPID, "apidra": RAPID, "aspart": RAPID, "lispro": RAPID,
    "glulisine": RAPID, "admelog": RAPID,
    "ultra_rapid": ULTRA_RAPID, "ultra-rapid": ULTRA_RAPID, "ultrarapid": ULTRA_RAPID,
    "fiasp": ULTRA_RAPID, "lyumjev": ULTRA_RAPID,
    "regular": REGULAR, "actrapid": REGULAR, "humulin r": REGULAR, "short-acting": REGULAR,
    "intermediate": INTERMEDIATE, "nph": INTERMEDIATE,
    "long_acting": LONG_ACTING, "long-acting": LONG_ACTING, "long": LONG_ACTING, "basal": LONG_ACTING,
    "glargine": LONG_ACTING, "lantus": LONG_ACTING, "toujeo": LONG_ACTING, "levemir": LONG_ACTING,
    "detemir": LONG_ACTING, "degludec": LONG_ACTING, "tresiba": LONG_ACTING, "abasaglar": LONG_ACTING,
}
