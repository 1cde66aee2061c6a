"""Observations as FHIR R4 resources, shaped like the HL7 CGM guide's sensor-reading profiles,
and the FHIR search `date` parameter."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo

from observations.codes import CGM_READING_PROFILES, KIND_CGM, LOINC_SYSTEM, UCUM_SYSTEM
from observations.models import Observation, Treatment
from observations.treatments.fhir import treatment_resource
from observations.validation import SENSOR_HIGH_MG_DL, implausible_time, parse_timestamp

OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
FHIR_JSON = "application/fhir+json"
DATE_PREFIXES = ("eq", "ge", "gt", "le", "lt")


def _instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def observation_resource(obs: Observation) -> dict:
    """One stored reading as a FHIR Observation, in the unit it was measured in."""
    unit = obs.original_unit
    quantity = {
        "value": obs.original_value,
        "unit": unit,
        "system": UCUM_SYSTEM,
        "code": unit,
    }
    if obs.at_sensor_limit:
        # The receiver showed "Low"/"High": the true value lies beyond the device limit.
        quantity["comparator"] = ">" if obs.value_mg_dl >= SENSOR_HIGH_MG_DL else "<"
    resource = {
        "resourceType": "Observation",
        "id": str(obs.pk),
        "status": obs.status,
        "category": [
            {
                "coding": [
                    {
                        "system": OBSERVATION_CATEGORY_SYSTEM,
                        "code": "laboratory",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": obs.code_system or LOINC_SYSTEM, "code": obs.code, "display": obs.display}]},
        "subject": {"reference": f"Patient/{obs.person_id}"},
        "effectiveDateTime": _instant(obs.effective_at),
        "valueQuantity": quantity,
    }
    if obs.kind == KIND_CGM and unit in CGM_READING_PROFILES:
        resource["meta"] = {"profile": [CGM_READING_PROFILES[unit]]}
    if obs.device:
        resource["device"] = {"display": obs.device}
    if obs.source_identifier:
        resource["identifier"] = [{"system": f"urn:glucast:source:{obs.source or 'unknown'}", "value": obs.source_identifier}]
    return resource


def searchset_bundle(observations, *, total: int, self_url: str, next_url: str | None, base_url: str) -> dict:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
    entries = []
    for row in observations:
        resource = treatment_resource(row) if isinstance(row, Treatment) else observation_resource(row)
        entries.append({
            "fullUrl": f"{base_url}{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "search": {"mode": "match"},
        })
    if entries:  # FHIR JSON has no empty arrays
        bundle["entry"] = entries
    return bundle


def date_filters(values: list[str], tz: tzinfo) -> dict:
    """ORM filters for FHIR `date` search values such as ge2024-05-01 or lt2024-05-02T10:00:00Z.

    A date without a time covers that whole local day of the person. Raises ValueError.
    """
    filters: dict = {}
    for raw in values:
        prefix, text = (raw[:2], raw[2:]) if raw[:2] in DATE_PREFIXES else ("eq", raw)
        if len(text) == 10:
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{raw!r} is not a FHIR date (YYYY-MM-DD or a full date-time)") from None
            try:
                low = datetime.combine(day, time.min, tzinfo=tz).astimezone(timezone.utc)
                high = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(timezone.utc)
            except OverflowError:
                raise ValueError(f"{raw!r} lies outside the representable dates") from None
            reason = implausible_time(low, future=False)
            if reason:
                raise ValueError(f"{raw!r}: {reason}")
        else:
            try:
                low = high = parse_timestamp(text, tz)
            except ValueError as exc:
                raise ValueError(f"{raw!r}: {exc}") from None
        if prefix == "eq":
            if low == high:
                filters["effective_at"] = low
            else:
                filters["effective_at__gte"], filters["effective_at__lt"] = low, high
        elif prefix == "ge":
            filters["effective_at__gte"] = low
        elif prefix == "gt":
            filters["effective_at__gt" if low == high else "effective_at__gte"] = high
        elif prefix == "le":
            filters["effective_at__lte" if low == high else "effective_at__lt"] = high
        elif prefix == "lt":
            filters["effective_at__lt"] = low
    return filters

