"""Treatments as FHIR R4 resources, both ways (observations.treatments.codes says why which).

- carbohydrate intake, steps, heart rate: Observation with LOINC 9059-7 (g), 55423-8 ({steps},
  over an effectivePeriod), 8867-4 (/min);
- insulin: MedicationAdministration with status completed, medicationCodeableConcept text
  naming the insulin kind, dosage.dose (U: a bolus; with an effectivePeriod: an extended bolus)
  or dosage.rateQuantity (U/h: a basal rate; with an effectivePeriod end: a temporary basal).
  glucast's own kind rides in `category` (system TREATMENT_KIND_SYSTEM) so a round trip keeps it.

`raw_treatment_from_resource` reads one resource of a Bundle into a RawTreatment (the values are
judged by the one treatment validation); `treatment_resource` writes a stored one.
"""

from __future__ import annotations

from datetime import datetime, timezone

from observations.treatments import codes
from observations.treatments.validation import RawTreatment
from observations.validation import RowError

TREATMENT_KIND_SYSTEM = "urn:glucast:treatment-kind"
BOLUS_TYPE_SYSTEM = "urn:glucast:bolus-type"
UCUM_SYSTEM = "http://unitsofmeasure.org"
SKIPPED_STATUSES = {"entered-in-error", "not-done", "cancelled"}
_KIND_TEXT_TO_INSULIN = {text: kind for kind, text in codes.INSULIN_KIND_TEXT.items()}

# How the treatment validation's field names read in these resources.
OBSERVATION_FIELD_NAMES = {"time": "effectiveDateTime", "amount": "valueQuantity.value", "unit": "valueQuantity.code",
                           "duration_min": "effectivePeriod", "source_identifier": "id"}
MEDICATION_FIELD_NAMES = {"time": "effectiveDateTime", "amount": "dosage.dose.value", "unit": "dosage.dose.code",
                          "duration_min": "effectivePeriod", "insulin_kind": "medicationCodeableConcept",
                          "source_identifier": "id"}


def _instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _coded(codeable, system: str) -> str | None:
    for coding in (codeable or {}).get("coding") or [] if isinstance(codeable, dict) else []:
        if isinstance(coding, dict) and coding.get("system") == system:
            return coding.get("code")
    return None


def _period(resource: dict, position: int, errors: list[RowError]):
    """(start, minutes or None) from effectiveDateTime or effectivePeriod."""
    if "effectiveDateTime" in resource:
        return resource["effectiveDateTime"], None
    period = resource.get("effectivePeriod")
    if not isinstance(period, dict) or not period.get("start"):
        errors.append(RowError(position, "effectiveDateTime", "missing: give effectiveDateTime or effectivePeriod.start"))
        return None, None
    if not period.get("end"):
        return period["start"], None
    try:
        start = datetime.fromisoformat(str(period["start"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(period["end"]).replace("Z", "+00:00"))
        minutes = (end - start).total_seconds() / 60.0
    except (ValueError, TypeError):
        errors.append(RowError(position, "effectivePeriod", "start and end must be date-times with an offset"))
        return None, None
    if minutes <= 0:
        errors.append(RowError(position, "effectivePeriod", "end must be after start"))
        return None, None
    return period["start"], minutes


def _source_identifier(resource: dict) -> str:
    """glucast's own identifier when the resource came from glucast (a round trip is then a
    duplicate), else the resource id."""
    for item in resource.get("identifier") or []:
        if isinstance(item, dict) and str(item.get("system", "")).startswith("urn:glucast:source:") and item.get("value"):
            return str(item["value"])
    return str(resource.get("id") or "")


def is_treatment_observation(resource: dict, loinc: str | None) -> bool:
    return resource.get("resourceType") == "Observation" and loinc in codes.LOINC_TO_KIND


def raw_treatment_from_resource(resource: dict, position: int, loinc: str | None, errors: list[RowError]) -> RawTreatment | None:
    """A treatment Observation (9059-7 / 55423-8 / 8867-4) or an insulin MedicationAdministration
    as a RawTreatment (row = the entry's position); shape errors are added to `errors`."""
    time, minutes = _period(resource, position, errors)
    if time is None:
        return None
    identifier = _source_identifier(resource)
    if resource.get("resourceType") == "Observation":
        quantity = resource.get("valueQuantity")
        if not isinstance(quantity, dict):
            errors.append(RowError(position, "valueQuantity", "missing"))
            return None
        return RawTreatment(
            row=position, kind=codes.LOINC_TO_KIND[loinc], time=time, amount=quantity.get("value"),
            unit=quantity.get("code") or quantity.get("unit"), duration_min=minutes, source_identifier=identifier,
        )
    dosage = resource.get("dosage") if isinstance(resource.get("dosage"), dict) else {}
    dose, rate = dosage.get("dose"), dosage.get("rateQuantity")
    kind = _coded(resource.get("category"), TREATMENT_KIND_SYSTEM)
    if isinstance(dose, dict):
        quantity, kind = dose, kind or codes.BOLUS
    elif isinstance(rate, dict):
        quantity = rate
        kind = kind or (codes.TEMP_BASAL if minutes else codes.BASAL_RATE)
    else:
        errors.append(RowError(position, "dosage", "missing: an insulin administration needs dosage.dose (U) or dosage.rateQuantity (U/h)"))
        return None
    medication = resource.get("medicationCodeableConcept") if isinstance(resource.get("medicationCodeableConcept"), dict) else {}
    names = [medication.get("text")] + [c.get("display") for c in medication.get("coding") or [] if isinstance(c, dict)]
    insulin_kind = None
    for name in names:
        if isinstance(name, str):
            insulin_kind = _KIND_TEXT_TO_INSULIN.get(name) or codes.INSULIN_KIND_ALIASES.get(name.strip().lower())
            if insulin_kind:
                break
    bolus_type = _coded(resource.get("category"), BOLUS_TYPE_SYSTEM)
    if kind == codes.BOLUS and minutes and not bolus_type:
        bolus_type = codes.EXTENDED
    return RawTreatment(
        row=position, kind=kind, time=time, amount=quantity.get("value"), unit=quantity.get("code") or quantity.get("unit"),
        duration_min=minutes, insulin_kind=insulin_kind, bolus_type=bolus_type, source_identifier=identifier,
    )


def treatment_resource(treatment) -> dict:
    """One stored treatment as its FHIR resource (Observation or MedicationAdministration)."""
    spec = codes.TREATMENT_KINDS[treatment.kind]
    if treatment.duration is not None:
        effective = {"effectivePeriod": {"start": _instant(treatment.effective_at),
                                         "end": _instant(treatment.effective_at + treatment.duration)}}
    else:
        effective = {"effectiveDateTime": _instant(treatment.effective_at)}
    quantity = {"value": treatment.amount, "unit": treatment.unit, "system": UCUM_SYSTEM, "code": treatment.unit}
    subject = {"reference": f"Patient/{treatment.person_id}"}
    if spec.fhir_resource == "Observation":
        resource = {
            "resourceType": "Observation", "id": f"t{treatment.pk}", "status": "final" if treatment.is_valid else "entered-in-error",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "activity" if treatment.kind != codes.CARBS else "survey"}]}],
            "code": {"coding": [{"system": codes.LOINC_SYSTEM, "code": spec.loinc, "display": spec.display}]},
            "subject": subject, **effective, "valueQuantity": quantity,
        }
    else:
        category = [{"system": TREATMENT_KIND_SYSTEM, "code": treatment.kind, "display": spec.display}]
        if treatment.bolus_type:
            category.append({"system": BOLUS_TYPE_SYSTEM, "code": treatment.bolus_type})
        dosage = {"dose": quantity} if treatment.kind == codes.BOLUS else {"rateQuantity": quantity}
        resource = {
            "resourceType": "MedicationAdministration", "id": f"t{treatment.pk}",
            "status": "completed" if treatment.is_valid else "entered-in-error",
            "category": {"coding": category},
            "medicationCodeableConcept": {"text": codes.INSULIN_KIND_TEXT.get(treatment.insulin_kind, "insulin")},
            "subject": subject, **effective, "dosage": dosage,
        }
    if treatment.source_identifier:
        resource["identifier"] = [{"system": f"urn:glucast:source:{treatment.source or 'unknown'}", "value": treatment.source_identifier}]
    return resource
