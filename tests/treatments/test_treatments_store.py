"""The treatment model and its services: validation (every rule names row and field, nothing
half-saved), idempotent storage, deletion with its import, and the selector features read."""

import datetime as dt
import math
import zoneinfo

import pytest
from django.test import override_settings

from observations.models import ImportBatch, Treatment
from observations.services import delete_import
from observations.treatments.services import (
    end_running_temp_basal,
    store_treatments,
    treatments_between,
    withdraw_treatments,
)
from observations.treatments.validation import RawTreatment, validate_treatments
from observations.validation import ImportRejected

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def raw(row=1, **values):
    base = {"kind": "bolus", "time": T0.isoformat(), "amount": 4.5}
    base.update(values)
    return RawTreatment(row=row, **base)


def rejected(raws, field, reason_part):
    with pytest.raises(ImportRejected) as caught:
        validate_treatments(raws, tz=BERLIN)
    errors = caught.value.errors
    assert any(e.field == field and reason_part in e.reason for e in errors), errors
    return errors


@pytest.mark.parametrize(
    "values, field, reason",
    [
        ({"kind": "insulin"}, "kind", "is not one of"),
        ({"kind": None}, "kind", "missing"),
        ({"amount": float("nan")}, "amount", "not a finite number"),
        ({"amount": float("inf")}, "amount", "not a finite number"),
        ({"amount": "1e400"}, "amount", "not a finite number"),
        ({"amount": 10**400}, "amount", "not a finite number"),
        ({"amount": -1}, "amount", "negative"),
        ({"amount": 100.5}, "amount", "outside the accepted 0-100 U"),
        ({"amount": True}, "amount", "is not a number"),
        ({"kind": "carbs", "amount": 501}, "amount", "0-500 g"),
        ({"kind": "basal_rate", "amount": 36}, "amount", "0-35 U/h"),
        ({"kind": "temp_basal", "amount": 1.0}, "duration_min", "needs its duration"),
        ({"kind": "temp_basal", "amount": 1.0, "duration_min": 60 * 25}, "duration_min", "longer than 24 hours"),
        ({"kind": "heart_rate", "amount": 300}, "amount", "20-250 /min"),
        ({"kind": "heart_rate", "amount": 10}, "amount", "20-250 /min"),
        ({"kind": "steps", "amount": 5000, "duration_min": 5}, "amount", "more than 300 a minute"),
        ({"kind": "steps", "amount": 50}, "duration_min", "needs its duration"),
        ({"unit": "g"}, "unit", "is not a unit of bolus; use U"),
        ({"unit": "mg/dL"}, "unit", "is not a unit of bolus"),
        ({"insulin_kind": "syrup"}, "insulin_kind", "is not one of"),
        ({"kind": "carbs", "amount": 20, "insulin_kind": "rapid"}, "insulin_kind", "only insulin"),
        ({"kind": "carbs", "amount": 20, "bolus_type": "meal"}, "bolus_type", "only a bolus"),
        ({"absorption_min": 180}, "absorption_min", "only carbs"),
        ({"time": "1989-12-31T23:00:00Z"}, "time", "before 1990-01-01"),
        ({"time": "2026-03-01"}, "time", "no time of day"),
        ({"time": "yesterday"}, "time", "not a recognised date"),
        ({"source_identifier": "=HYPERLINK(1)"}, "source_identifier", "spreadsheet formula"),
        ({"device": "pump\x00"}, "device", "control characters"),
        ({"client_fields": {"pumpId": float("nan")}}, "client_fields", "not a finite number"),
        ({"client_fields": {"nested": {"a": 1}}}, "client_fields", "must be text, a number"),
    ],
)
def test_each_rule_names_its_field(values, field, reason):
    rejected([raw(**values)], field, reason)


def test_future_treatments_are_refused_they_are_never_plans():
    soon = dt.datetime.now(UTC) + dt.timedelta(minutes=30)
    errors = rejected([raw(time=soon.isoformat())], "time", "in the future")
    assert "only recorded treatments" in errors[0].reason


def test_every_bad_row_is_listed():
    with pytest.raises(ImportRejected) as caught:
        validate_treatments([raw(1, amount=-1), raw(2), raw(3, kind="x")], tz=BERLIN)
    assert {e.row for e in caught.value.errors} == {1, 3}


def test_units_aliases_and_canonical_forms():
    batch = validate_treatments(
        [raw(1, unit="IU", insulin_kind="Fiasp"), raw(2, kind="steps", amount="1.200,0".replace(".", ""), unit="steps",
                                                       duration_min=10, time=(T0 + dt.timedelta(minutes=1)).isoformat()),
         raw(3, kind="heart_rate", amount=72, unit="bpm")],
        tz=BERLIN,
    )
    bolus, steps, heart = batch.treatments
    assert (bolus.unit, bolus.insulin_kind) == ("U", "ultra_rapid")
    assert (steps.unit, steps.amount, steps.duration) == ("{steps}", 1200.0, dt.timedelta(minutes=10))
    assert heart.unit == "/min"


def test_naive_times_are_the_persons_zone():
    batch = validate_treatments([raw(time="2026-03-01T13:00:00")], tz=BERLIN)
    assert batch.treatments[0].effective_at == T0


def test_repeats_inside_a_batch_are_duplicates_but_conflicts_are_refused():
    same = validate_treatments([raw(1, source_identifier="a"), raw(2, source_identifier="a")], tz=BERLIN)
    assert (len(same.treatments), same.repeated) == (1, 1)
    errors = rejected([raw(1, source_identifier="a"), raw(2, source_identifier="a", amount=5)],
                      "source_identifier", "identifier of row 1")
    assert errors[0].row == 2
    rejected([raw(1), raw(2, amount=5)], "source_identifier", "same time as row 1")


@override_settings(GLUCAST_IMPORT_MAX_ROWS=3)
def test_oversized_batches_are_refused_before_any_work():
    with pytest.raises(ImportRejected) as caught:
        validate_treatments([raw(i) for i in range(4)], tz=BERLIN)
    assert "4 treatments in one request; the limit is 3" in caught.value.message


@pytest.mark.django_db
def test_store_is_idempotent_and_counts_exactly(person):
    records = [
        raw(1, source_identifier="loop-1", bolus_type="meal", insulin_kind="rapid"),
        raw(2, kind="carbs", amount=45, absorption_min=180, time=(T0 - dt.timedelta(minutes=2)).isoformat()),
        raw(3, kind="temp_basal", amount=0, duration_min=30, time=(T0 + dt.timedelta(minutes=5)).isoformat()),
    ]
    first = store_treatments(person=person, records=records, source="api")
    assert (first.created, first.duplicates) == (3, 0)
    again = store_treatments(person=person, records=records, source="api")
    assert (again.created, again.duplicates) == (0, 3)
    assert Treatment.objects.for_person(person).count() == 3
    assert (again.batch.n_treatments, again.batch.n_treatment_duplicates) == (0, 3)
    carbs = Treatment.objects.get(kind="carbs")
    assert carbs.source_identifier == f"carbs@{int((T0 - dt.timedelta(minutes=2)).timestamp() * 1000)}"
    assert carbs.absorption == dt.timedelta(minutes=180)
    assert carbs.created_at == carbs.modified_at
    temp = Treatment.objects.get(kind="temp_basal")
    assert (temp.amount, temp.duration, temp.insulin_kind) == (0.0, dt.timedelta(minutes=30), None)


@pytest.mark.django_db
def test_a_bad_row_saves_nothing(person):
    with pytest.raises(ImportRejected):
        store_treatments(person=person, records=[raw(1), raw(2, kind="carbs", amount=9999)], source="api")
    assert not Treatment.objects.exists()
    assert not ImportBatch.objects.exists()


@pytest.mark.django_db
def test_the_same_identifier_is_per_person(person, other_person):
    store_treatments(person=person, records=[raw(source_identifier="x")], source="api")
    other = store_treatments(person=other_person, records=[raw(source_identifier="x")], source="api")
    assert other.created == 1


@pytest.mark.django_db
def test_deleting_an_import_deletes_its_treatments_only(person):
    kept = store_treatments(person=person, records=[raw(1)], source="api")
    gone = store_treatments(person=person, records=[raw(1, amount=2, time=(T0 + dt.timedelta(hours=1)).isoformat())],
                            source="csv")
    delete_import(person, gone.batch)
    assert list(Treatment.objects.values_list("import_batch", flat=True)) == [kept.batch.pk]


@pytest.mark.django_db
def test_selector_shape_and_intervals(person):
    store_treatments(person=person, source="api", records=[
        raw(1, kind="temp_basal", amount=0.4, duration_min=120, time=(T0 - dt.timedelta(hours=1)).isoformat()),
        raw(2, kind="bolus", amount=3, time=(T0 - dt.timedelta(hours=2)).isoformat()),
        raw(3, kind="carbs", amount=30, time=(T0 + dt.timedelta(minutes=10)).isoformat()),
        raw(4, kind="bolus", amount=1, insulin_kind="rapid", bolus_type="smb",
            time=(T0 + dt.timedelta(hours=3)).isoformat()),
    ])
    frame = treatments_between(person=person, start=T0, end=T0 + dt.timedelta(hours=1))
    assert list(frame.columns) == ["id", "time", "kind", "amount", "unit", "duration_min", "insulin_kind",
                                   "bolus_type", "absorption_min"]
    # the temp basal began before `start` but still runs; the bolus 2 h before is left out
    assert list(frame["kind"]) == ["temp_basal", "carbs"]
    assert frame["duration_min"].iloc[0] == 120 and math.isnan(frame["duration_min"].iloc[1])
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    empty = treatments_between(person=person, start=T0 + dt.timedelta(days=10), end=T0 + dt.timedelta(days=11))
    assert len(empty) == 0 and list(empty.columns) == list(frame.columns)
    everything = treatments_between(person=person, kinds=["bolus"])
    assert list(everything["bolus_type"]) == [None, "smb"]


@pytest.mark.django_db
def test_cancelled_temp_basal_and_withdrawn_rows(person):
    store_treatments(person=person, source="api", records=[
        raw(1, kind="temp_basal", amount=2, duration_min=60, source_identifier="tb"),
        raw(2, kind="bolus", amount=2, source_identifier="b", time=(T0 + dt.timedelta(minutes=1)).isoformat()),
    ])
    assert end_running_temp_basal(person=person, at=T0 + dt.timedelta(minutes=20)) == 1
    assert Treatment.objects.get(source_identifier="tb").duration == dt.timedelta(minutes=20)
    assert withdraw_treatments(person=person, identifiers=["b"]) == 1
    assert list(treatments_between(person=person)["kind"]) == ["temp_basal"]
    assert Treatment.objects.modified_since(T0).filter(source_identifier="b").exists()
