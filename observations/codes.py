"""LOINC codes glucast accepts for glucose readings, as in the HL7 CGM implementation guide.

A code fixes both the specimen (interstitial fluid = CGM, blood/capillary = "blood") and the
kind of quantity (mass per volume = mg/dL, moles per volume = mmol/L), so a reading's code and
unit must agree.
"""

from dataclasses import dataclass

from observations.units import MG_DL, MMOL_L

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"

KIND_CGM = "cgm"
KIND_BLOOD = "blood"


@dataclass(frozen=True)
class GlucoseCode:
    code: str
    display: str
    kind: str
    unit: str  # the UCUM unit the code's quantity is expressed in


GLUCOSE_CODES: dict[str, GlucoseCode] = {
    c.code: c
    for c in (
        GlucoseCode("99504-3", "Glucose [Mass/volume] in Interstitial fluid", KIND_CGM, MG_DL),
        GlucoseCode("105272-9", "Glucose [Moles/volume] in Interstitial fluid", KIND_CGM, MMOL_L),
        GlucoseCode("2339-0", "Glucose [Mass/volume] in Blood", KIND_BLOOD, MG_DL),
        GlucoseCode("15074-8", "Glucose [Moles/volume] in Blood", KIND_BLOOD, MMOL_L),
        GlucoseCode(
            "41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer", KIND_BLOOD, MG_DL
        ),
        GlucoseCode(
            "14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer", KIND_BLOOD, MMOL_L
        ),
    )
}

# The code used when a source says only "CGM reading" or "meter reading" and a unit.
_DEFAULT_CODE = {
    (KIND_CGM, MG_DL): "99504-3",
    (KIND_CGM, MMOL_L): "105272-9",
    (KIND_BLOOD, MG_DL): "41653-7",
    (KIND_BLOOD, MMOL_L): "14743-9",
}


def default_code(kind: str, unit: str) -> GlucoseCode:
    return GLUCOSE_CODES[_DEFAULT_CODE[(kind, unit)]]


# HL7 CGM guide profiles for single sensor readings, by unit.
CGM_READING_PROFILES = {
    MG_DL: "http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-mass-per-volume",
    MMOL_L: "http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-moles-per-volume",
}
