"""Treatments into the store, and out again for features and models.

    store_treatments(*, person, records, source, ...) -> TreatmentImport   validate all, store new
    store_checked_treatments(*, person, checked, source, ...) -> TreatmentImport  (already checked)
    end_running_temp_basal(*, person, at) -> int          a temp basal cancelled early is shortened
    withdraw_treatments(*, person, identifiers) -> int    the source deleted them (isValid false)
    treatments_between(*, person, start, end) -> DataFrame  what features read (shape below)

Deleting an import deletes its treatments with it (observations.services.delete_import: the
foreign key cascades), as it does its readings.

Like readings (observations.services.import_readings): one INSERT ... SELECT FROM unnest(...)
ON CONFLICT DO NOTHING per chunk on the unique (person, source_identifier), so a re-send is
counted as a duplicate, costs no query per row, and nothing is half-saved (one transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.http import Http404
from django.utils import timezone

from observations.models import ImportBatch
from observations.services import INSERT_CHUNK, number_array, text_array
from observations.treatments import codes
from observations.treatments.models import Treatment
from observations.treatments.validation import CheckedTreatment, validate_treatments

TREATMENT_COLUMNS = [
    "id", "time", "kind", "amount", "unit", "duration_min", "insulin_kind", "bolus_type", "absorption_min",
]


@dataclass(frozen=True)
class TreatmentImport:
    batch: ImportBatch | None  # None when nothing was given
    created: int
    duplicates: int  # already stored, or repeated inside the batch
    span: tuple[datetime, datetime] | None  # first and last time of the treatments sent


def store_treatments(
    *, person, records, source: str, filename: str = "", batch: ImportBatch | None = None,
    skipped: int = 0, now=None,
) -> TreatmentImport:
    """Validate every raw treatment (RawTreatment; naive times in the person's zone) and store
    the new ones in one transaction. Raises ImportRejected naming each bad row and field;
    nothing is stored then."""
    checked = validate_treatments(records, tz=person.tz, now=now)
    return store_checked_treatments(
        person=person, checked=checked.treatments, source=source, filename=filename, batch=batch,
        skipped=skipped, repeated=checked.repeated,
    )


def store_checked_treatments(
    *, person, checked: list[CheckedTreatment], source: str, filename: str = "",
    batch: ImportBatch | None = None, skipped: int = 0, repeated: int = 0,
) -> TreatmentImport:
    """Store treatments that went through validate_treatments; returns exact counts.

    Without `batch` a new import is made (if there is anything to store or count); with it
    (one of the person's imports: a day's live uploads, the readings' import of the same file)
    the treatments join it and its counts grow."""
    checked = list(checked)
    if not checked and not repeated and batch is None:
        return TreatmentImport(batch=None, created=0, duplicates=0, span=None)
    table = Treatment._meta.db_table
    now = timezone.now()
    created = 0
    with transaction.atomic():
        if batch is None:
            batch = ImportBatch.objects.create(
                person=person, source=source[:32], filename=filename[:255], n_skipped=skipped
            )
        else:
            if batch.person_id != person.pk:
                raise Http404("No such import.")
            batch = ImportBatch.objects.select_for_update().get(pk=batch.pk)
            batch.n_skipped += skipped
        with connection.cursor() as cursor:
            for start in range(0, len(checked), INSERT_CHUNK):
                chunk = checked[start : start + INSERT_CHUNK]
                cursor.execute(
                    f"""
                    WITH inserted AS (
                        INSERT INTO {table} (
                            person_id, kind, effective_at, duration, amount, unit, insulin_kind,
                            bolus_type, absorption, is_valid, device, source, import_batch_id,
                            source_identifier, client_fields, created_at, modified_at
                        )
                        SELECT %s, u.kind, u.effective_at, make_interval(secs => u.duration_s), u.amount,
                               u.unit, u.insulin_kind, u.bolus_type, make_interval(secs => u.absorption_s),
                               u.is_valid, u.device, %s, %s, u.source_identifier, u.client_fields::jsonb, %s, %s
                        FROM unnest(
                            %s::text[], %s::timestamptz[], %s::float8[], %s::float8[], %s::text[], %s::text[],
                            %s::text[], %s::float8[], %s::boolean[], %s::text[], %s::text[], %s::text[]
                        ) AS u(kind, effective_at, duration_s, amount, unit, insulin_kind, bolus_type,
                               absorption_s, is_valid, device, source_identifier, client_fields)
                        ON CONFLICT (person_id, source_identifier) DO NOTHING
                        RETURNING 1
                    )
                    SELECT count(*) FROM inserted
                    """,
                    [
                        person.pk, source[:32], batch.pk, now, now,
                        text_array([t.kind for t in chunk]),
                        text_array([t.effective_at.isoformat() for t in chunk]),
                        number_array([None if t.duration is None else t.duration.total_seconds() for t in chunk]),
                        number_array([t.amount for t in chunk]),
                        text_array([t.unit for t in chunk]),
                        text_array([t.insulin_kind for t in chunk]),
                        text_array([t.bolus_type for t in chunk]),
                        number_array([None if t.absorption is None else t.absorption.total_seconds() for t in chunk]),
                        "{" + ",".join("t" if t.is_valid else "f" for t in chunk) + "}",
                        text_array([t.device for t in chunk]),
                        text_array([t.source_identifier for t in chunk]),
                        text_array([json.dumps(t.client_fields, separators=(",", ":")) for t in chunk]),
                    ],
                )
                created += cursor.fetchone()[0]
        duplicates = len(checked) - created + repeated
        batch.n_treatments += created
        batch.n_treatment_duplicates += duplicates
        batch.save(update_fields=["n_treatments", "n_treatment_duplicates", "n_skipped"])
    times = [t.effective_at for t in checked]
    return TreatmentImport(
        batch=batch, created=created, duplicates=duplicates, span=(min(times), max(times)) if times else None
    )


def end_running_temp_basal(*, person, at: datetime) -> int:
    """A temporary basal cancelled at `at` (Nightscout sends a Temp Basal of duration 0, or the
    pump ends it early): the one running then is shortened to end at `at`. Returns how many."""
    running = (
        Treatment.objects.for_person(person).usable()
        .filter(kind=codes.TEMP_BASAL, effective_at__lt=at, effective_at__gte=at - codes.MAX_DURATION)
        .select_for_update()
    )
    changed = 0
    for treatment in running:
        if treatment.duration is not None and treatment.effective_at + treatment.duration > at:
            treatment.duration = at - treatment.effective_at
            treatment.modified_at = timezone.now()
            treatment.save(update_fields=["duration", "modified_at"])
            changed += 1
    return changed


def withdraw_treatments(*, person, identifiers) -> int:
    """The source deleted these treatments (Nightscout isValid false, API v3 DELETE): they stay
    as withdrawn rows, so `history` reports the deletion, and are no longer inputs."""
    return (
        Treatment.objects.for_person(person)
        .filter(source_identifier__in=list(identifiers), is_valid=True)
        .update(is_valid=False, modified_at=timezone.now())
    )


def _minutes(values) -> np.ndarray:
    return np.array([np.nan if v is None else v.total_seconds() / 60.0 for v in values], dtype=float)


def treatments_between(*, person, start: datetime | None = None, end: datetime | None = None, kinds=None) -> pd.DataFrame:
    """One person's usable treatments that act within [start, end], oldest first, as a frame.

    A row is included when it starts at or before `end` and either starts at or after `start`
    or its interval (temporary basal, extended bolus, steps count) reaches past `start`; so a
    caller that needs insulin on board at `start` passes a `start` earlier by the insulin's
    duration of action. Withdrawn rows (is_valid false) are never included. `kinds` limits the
    kinds (e.g. ("bolus", "carbs")).

    Columns (one row per treatment; always present, even when empty):
      id            int
      time          datetime64[ns, UTC]  when it was given / eaten / measured (interval start)
      kind          object  (str) bolus, basal_rate, temp_basal, carbs, steps, heart_rate
      amount        float   U (bolus), U/h (basal_rate, temp_basal), g (carbs), steps, /min
      unit          object  (str) U, U/h, g, {steps}, /min (canonical per kind, always the same)
      duration_min  float   interval length in minutes; NaN when it has none (a plain bolus,
                            a scheduled basal rate that holds until the next one, a meal)
      insulin_kind  object  rapid, ultra_rapid, regular, intermediate, long_acting, or None
      bolus_type    object  meal, correction, smb, extended, or None
      absorption_min float  carbs: the app's absorption time in minutes, else NaN
    """
    qs = Treatment.objects.for_person(person).usable()
    if kinds is not None:
        qs = qs.filter(kind__in=list(kinds))
    if start is not None:
        qs = qs.filter(effective_at__gte=start - codes.MAX_DURATION)
    if end is not None:
        qs = qs.filter(effective_at__lte=end)
    rows = list(
        qs.order_by("effective_at", "pk").values_list(
            "id", "effective_at", "kind", "amount", "unit", "duration", "insulin_kind", "bolus_type", "absorption"
        )
    )
    frame = pd.DataFrame.from_records(rows, columns=TREATMENT_COLUMNS)
    frame["id"] = frame["id"].astype("int64")
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[ns, UTC]")
    frame["amount"] = frame["amount"].astype(float)
    frame["duration_min"] = _minutes(frame["duration_min"])
    frame["absorption_min"] = _minutes(frame["absorption_min"])
    # Plain Python values (None where missing), whatever pandas' default string dtype is.
    for position, name in ((2, "kind"), (4, "unit"), (6, "insulin_kind"), (7, "bolus_type")):
        frame[name] = pd.Series([row[position] for row in rows], dtype=object)
    if start is not None and len(frame):
        reaches = frame["time"] + pd.to_timedelta(frame["duration_min"].fillna(0), unit="min")
        keep = (frame["time"] >= pd.Timestamp(start)) | (reaches > pd.Timestamp(start))
        frame = frame[keep].reset_index(drop=True)
    return frame

