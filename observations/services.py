"""Readings into the store: import services for every source, and deleting an import.

Reading them back out as frames for the pipeline is observations.readings."""

import logging
from dataclasses import dataclass

import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.http import Http404
from django.utils import timezone

from observations.codes import LOINC_SYSTEM
from observations.episodes import forget_windows
from observations.importers import FIELD_NAMES, ParsedFile, parse_bytes, parse_fhir_bundle
from observations.models import ImportBatch, Observation, ObservationStatus
from observations.units import MG_DL
from observations.validation import ImportRejected, RawReading, control_characters, validate_readings

logger = logging.getLogger(__name__)


# --- Bringing readings in ---------------------------------------------------------------------
# Every source (REST, FHIR, files, the demo loader) ends in import_readings, after the one
# validation path in observations.validation.

# Rows per INSERT statement: large enough that 100,000 readings take a handful of round trips,
# small enough to keep each statement's parameter arrays modest.
INSERT_CHUNK = 20_000


def text_array(values) -> str:
    """A PostgreSQL array literal of quoted strings (None is NULL).

    Sent as one text parameter and cast server-side (::text[], ::timestamptz[]): adapting
    100,000 Python objects one by one in the driver costs more than the INSERT itself.
    """
    return "{" + ",".join(
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    ) + "}"


def number_array(values) -> str:
    """As text_array, for numbers; None is NULL."""
    return "{" + ",".join("NULL" if v is None else repr(float(v)) for v in values) + "}"


def import_readings(
    person, readings, *, source: str, filename: str = "", skipped: int = 0, batch: ImportBatch | None = None
) -> ImportBatch:
    """Store checked readings for `person` in one transaction; returns the ImportBatch with
    exact n_created / n_duplicates counts.

    Bulk INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING on the unique
    (person, kind, effective_at): no query per row, and a reading already stored (or repeated
    inside the batch) is counted as a duplicate, so re-importing the same file is idempotent.

    With `batch` (one of the person's imports) the readings join it and its counts grow: live
    uploads every 5 minutes gather in one import per day instead of 288 rows on the data page.
    """
    readings = list(readings)
    table = Observation._meta.db_table
    now = timezone.now()
    with transaction.atomic():
        if batch is None:
            batch = ImportBatch.objects.create(
                person=person, source=source[:32], filename=filename[:255], n_skipped=skipped
            )
        else:
            if batch.person_id != person.pk:
                raise Http404("No such import.")
            # Locked so concurrent uploads into the same day's import add their counts exactly.
            batch = ImportBatch.objects.select_for_update().get(pk=batch.pk)
            batch.n_skipped += skipped
        created = 0
        with connection.cursor() as cursor:
            for start in range(0, len(readings), INSERT_CHUNK):
                chunk = readings[start : start + INSERT_CHUNK]
                cursor.execute(
                    f"""
                    WITH inserted AS (
                        INSERT INTO {table} (
                            person_id, kind, code_system, code, display, value_mg_dl,
                            original_value, original_unit, at_sensor_limit, effective_at, status,
                            device, source, import_batch_id, source_identifier, created_at
                        )
                        SELECT %s, u.kind, %s, u.code, u.display, u.value_mg_dl,
                               u.original_value, u.original_unit, u.at_sensor_limit,
                               u.effective_at, %s, u.device, %s, %s, u.source_identifier, %s
                        FROM unnest(
                            %s::text[], %s::text[], %s::text[], %s::float8[], %s::float8[],
                            %s::text[], %s::boolean[], %s::timestamptz[], %s::text[], %s::text[]
                        ) AS u(kind, code, display, value_mg_dl, original_value, original_unit,
                               at_sensor_limit, effective_at, device, source_identifier)
                        ON CONFLICT (person_id, kind, effective_at) DO NOTHING
                        RETURNING 1
                    )
                    SELECT count(*) FROM inserted
                    """,
                    [
                        person.pk,
                        LOINC_SYSTEM,
                        ObservationStatus.FINAL,
                        source[:32],
                        batch.pk,
                        now,
                        text_array([r.kind for r in chunk]),
                        text_array([r.code for r in chunk]),
                        text_array([r.display for r in chunk]),
                        number_array([r.value_mg_dl for r in chunk]),
                        number_array([r.original_value for r in chunk]),
                        text_array([r.original_unit for r in chunk]),
                        "{" + ",".join("t" if r.at_sensor_limit else "f" for r in chunk) + "}",
                        text_array([r.effective_at.isoformat() for r in chunk]),
                        text_array([r.device for r in chunk]),
                        text_array([r.source_identifier for r in chunk]),
                    ],
                )
                created += cursor.fetchone()[0]
        batch.n_created += created
        batch.n_duplicates += len(readings) - created
        batch.save(update_fields=["n_created", "n_duplicates", "n_skipped"])
    return batch


def import_raw_readings(
    person, raws, *, source: str, filename: str = "", skipped: int = 0, now=None
) -> ImportBatch:
    """Validate raw readings (all rows, in the person's time zone) and store them.

    Raises validation.ImportRejected listing every bad row; nothing is stored then.
    """
    readings = validate_readings(raws, tz=person.tz, now=now)
    return import_readings(person, readings, source=source, filename=filename, skipped=skipped)


def check_upload_size(size: int) -> None:
    limit = settings.GLUCAST_MAX_UPLOAD_BYTES
    if size > limit:
        raise ImportRejected.file_error(
            f"the file is {size / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.0f} MB"
        )


def check_fhir_subjects(person, patient_ids) -> None:
    """Observations may name only the importing person as subject: anyone else is 404."""
    if any(patient_id != str(person.pk) for patient_id in patient_ids):
        raise Http404("No such Patient.")


@dataclass(frozen=True)
class ParsedImport:
    """An import of a parsed source: the stored batch plus what the parser skipped and why."""

    batch: ImportBatch
    format: str
    skipped_reasons: dict[str, int]


def _import_parsed(person, parsed: ParsedFile, *, filename: str = "") -> ParsedImport:
    check_fhir_subjects(person, parsed.subject_patient_ids)
    try:
        batch = import_raw_readings(
            person, parsed.readings, source=parsed.format, filename=filename, skipped=parsed.n_skipped
        )
    except ImportRejected as exc:
        if parsed.format in FIELD_NAMES:
            raise exc.with_field_names(FIELD_NAMES[parsed.format]) from None
        raise
    return ParsedImport(batch=batch, format=parsed.format, skipped_reasons=dict(parsed.skipped))


def import_file(person, data: bytes, *, fmt: str = "auto", filename: str = "") -> ParsedImport:
    """Parse, validate and store one uploaded/exported file (any supported format).

    Raises ImportRejected (wrong format, too large, bad rows) or Http404 (a FHIR subject that
    is someone else); nothing is stored then.
    """
    check_upload_size(len(data))
    reason = control_characters(filename)
    if reason:
        raise ImportRejected.file_error(reason, field="filename")
    return _import_parsed(person, parse_bytes(data, fmt=fmt), filename=filename)


def import_fhir_bundle(person, document) -> ParsedImport:
    """A FHIR Bundle posted as JSON (already decoded)."""
    return _import_parsed(person, parse_fhir_bundle(document))


def import_frame(person, frame: pd.DataFrame, *, source: str = "demo", filename: str = "") -> ImportBatch:
    """Readings from a frame with columns time (naive = the person's local time, or aware) and
    glucose_mg_dl — what import_broll_csv and the synthetic generator give — through the same
    validation and bulk insert as every other source."""
    # The database keeps microseconds; dropping finer digits here is explicit, not a warning.
    times = pd.to_datetime(frame["time"]).dt.floor("us")
    raws = [
        RawReading(row=row, time=moment.to_pydatetime(), value=float(value), unit=MG_DL)
        for row, (moment, value) in enumerate(zip(times, frame["glucose_mg_dl"], strict=True), start=1)
    ]
    return import_raw_readings(person, raws, source=source, filename=filename)


def import_broll_csv(path) -> dict[str, pd.DataFrame]:
    """The Broll et al. (2021) CGM file split by subject: {subject: frame[time, glucose_mg_dl]}.

    Times are local and naive, as in the file; import_frame reads them in the person's zone.
    """
    frame = pd.read_csv(path, dtype={"subject": str})
    missing = {"subject", "time", "glucose_mg_dl"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    frame["time"] = pd.to_datetime(frame["time"])
    return {
        str(subject): group[["time", "glucose_mg_dl"]].sort_values("time").reset_index(drop=True)
        for subject, group in frame.groupby("subject", sort=True)
    }


def batch_span(batch: ImportBatch):
    """(first, last) effective_at of the readings an import created, or None."""
    span = Observation.objects.filter(import_batch=batch).aggregate(
        start=Min("effective_at"), end=Max("effective_at")
    )
    return None if span["start"] is None else (span["start"], span["end"])


def schedule_window_refresh(person, span) -> None:
    """After readings over `span` changed: embed the similar-episode windows there in the worker,
    once the transaction commits. Never fails the import that asked for it."""
    if span is None:
        return

    def enqueue():
        from django_q.tasks import async_task

        try:
            async_task(
                "observations.tasks.refresh_windows_task",
                person.pk,
                span[0].isoformat(),
                span[1].isoformat(),
                group="windows",
                hook="persons.erasure.forget_erased_result",  # no result row outlives an erasure
            )
        except Exception:  # broker down: the dashboard refreshes recent windows itself
            logger.exception("Could not enqueue the window refresh of person %s", person.pk)

    transaction.on_commit(enqueue)


def delete_import(person, batch: ImportBatch) -> int:
    """Delete one of `person`'s imports, the readings it created and the similar-episode windows
    built from them; returns how many readings.

    Readings that the batch found as duplicates belong to the earlier import and stay.
    Windows are dropped here (no window outlives its readings); re-embedding what remains of the
    span is the caller's choice (schedule_window_refresh / episodes.rebuild_windows).
    """
    if batch.person_id != person.pk:
        raise Http404("No such import.")
    with transaction.atomic():
        span = batch_span(batch)
        n_readings, _ = Observation.objects.filter(import_batch=batch).delete()
        if span is not None:
            forget_windows(person, *span)
        batch.delete()
    return n_readings
