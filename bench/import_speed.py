"""How fast 100,000 CGM readings come in, against a naive per-row import measured in the same run.

    GLUCAST_PGDATA=var/pg-bench .venv/bin/python bench/import_speed.py [--readings 100000] [--runs 3]

Runs against a throw-away test database (created and dropped here) on the configured PostgreSQL.
Each path imports N readings (one reading every 5 minutes, ~347 days for 100,000) for a fresh
person and is repeated --runs times; the median is printed:

  api-json      POST /api/observations/ with a JSON list (DRF test client: parsing, validation,
                bulk insert, response)
  api-upload    POST /api/observations/import/ with a plain CSV file (multipart)
  command       python manage.py import_cgm USERNAME FILE (Dexcom Clarity CSV)
  service       import_file() on the same Dexcom file, no command wrapper
  re-import     the same file again: every reading a duplicate (the idempotency path)
  api-fhir      POST /api/fhir/Bundle with a collection Bundle (every Observation validated with
                fhir.resources: the slowest path, dominated by that per-resource validation)
  baseline      naive per-row ORM get_or_create of --baseline readings in autocommit,
                extrapolated linearly to N
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def readings_series(n: int, *, end: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """A plausible glucose trace: a slow daily wave plus a meal-like bump, whole mg/dL."""
    import math

    start = end - dt.timedelta(minutes=5 * (n - 1))
    out = []
    for k in range(n):
        t = start + dt.timedelta(minutes=5 * k)
        minute_of_day = (t.hour * 60 + t.minute) / 1440
        value = 125 + 35 * math.sin(2 * math.pi * minute_of_day) + 20 * math.sin(2 * math.pi * k / 37)
        out.append((t, int(round(value))))
    return out


def dexcom_csv(series) -> bytes:
    header = (
        "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,"
        "Source Device ID,Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),"
        "Duration (hh:mm:ss),Glucose Rate of Change (mg/dL/min),Transmitter Time (Long Integer),"
        "Transmitter ID"
    )
    lines = [
        header,
        "1,,FirstName,,Bench,,,,,,,,,",
        "2,,LastName,,Mark,,,,,,,,,",
        "3,,Device,,,Dexcom G6 Mobile App,Android G6,,,,,,,",
    ]
    for k, (t, value) in enumerate(series, start=4):
        lines.append(f"{k},{t:%Y-%m-%dT%H:%M:%S},EGV,,,,Android G6,{value},,,,,{k * 300},8AM1EY")
    return ("\r\n".join(lines) + "\r\n").encode()


def plain_csv(series) -> bytes:
    return ("time,value,unit\n" + "".join(f"{t:%Y-%m-%dT%H:%M:%S},{v},mg/dL\n" for t, v in series)).encode()


def fhir_bundle(series, patient_id: int) -> str:
    """A collection Bundle of CGM sensor-reading Observations (HL7 CGM guide shape)."""
    import json

    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{k:012d}",
            "resource": {
                "resourceType": "Observation",
                "id": f"bench-{k}",
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "99504-3"}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": t.isoformat() + "Z",  # FHIR needs an offset; the person is UTC
                "valueQuantity": {"value": v, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
            },
        }
        for k, (t, v) in enumerate(series)
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=2_000)
    args = parser.parse_args()

    import django

    django.setup()
    from persons.row_security import everyone  # noqa: E402

    # Set-up and checks over many people: the explicit row-security context for everyone, for the
    # whole process (kept referenced: a collected context manager would end).
    BENCH_CONTEXT = everyone("benchmark")
    BENCH_CONTEXT.__enter__()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from observations.models import Observation
    from observations.services import import_file
    from persons.services import create_person

    setup_test_environment()
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one "Enqueued" line per API import
    old_name = connection.settings_dict["NAME"]
    # Own database name, so a test run on the same server is never clobbered.
    connection.settings_dict.setdefault("TEST", {})["NAME"] = "glucast_bench_import_speed"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        n = args.readings
        # Naive local times (read in the person's zone) ending yesterday; UTC so no DST folds.
        end = dt.datetime.now().replace(microsecond=0) - dt.timedelta(days=1)
        series = readings_series(n, end=end)
        dexcom = dexcom_csv(series)
        plain = plain_csv(series)
        json_body = [{"effective_at": t.isoformat(), "value": v, "unit": "mg/dL"} for t, v in series]
        counter = iter(range(10_000))

        def fresh_person():
            person, _, _ = create_person(f"bench{next(counter)}", password="bench-password-123", time_zone="UTC")
            return person

        timings: dict[str, list[float]] = {}

        def timed(name, fn, expect_created):
            started = time.perf_counter()
            created = fn()
            elapsed = time.perf_counter() - started
            assert created == expect_created, f"{name}: created {created}, expected {expect_created}"
            timings.setdefault(name, []).append(elapsed)

        # Warm-up: the first request imports every app's URLs and views (one-time cost).
        warm_person = fresh_person()
        warm = APIClient()
        warm.force_authenticate(warm_person.owner)
        warm.post("/api/observations/", json_body[:10], format="json")
        warm.post("/api/fhir/Bundle", fhir_bundle(series[10:20], warm_person.pk), content_type="application/fhir+json")

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "clarity_export.csv"
            path.write_bytes(dexcom)
            for run in range(args.runs):
                person = fresh_person()
                client = APIClient()
                client.force_authenticate(person.owner)

                def api_json():
                    response = client.post("/api/observations/", json_body, format="json")
                    assert response.status_code == 201, response.data
                    return response.data["created"]

                timed("api-json", api_json, n)

                person = fresh_person()
                client = APIClient()
                client.force_authenticate(person.owner)

                def api_upload():
                    response = client.post(
                        "/api/observations/import/",
                        {"file": SimpleUploadedFile("readings.csv", plain)},
                        format="multipart",
                    )
                    assert response.status_code == 201, response.data
                    return response.data["created"]

                timed("api-upload", api_upload, n)

                person = fresh_person()

                def command():
                    call_command("import_cgm", person.owner.username, str(path), stdout=open(os.devnull, "w"))
                    return Observation.objects.for_person(person).count()

                timed("command", command, n)
                timed("re-import", lambda: import_file(person, dexcom).batch.n_created, 0)

                person = fresh_person()
                timed("service", lambda: import_file(person, dexcom).batch.n_created, n)

                person = fresh_person()
                client = APIClient()
                client.force_authenticate(person.owner)
                bundle_body = fhir_bundle(series, person.pk)

                def api_fhir():
                    response = client.post("/api/fhir/Bundle", bundle_body, content_type="application/fhir+json")
                    assert response.status_code == 201, response.data
                    return response.data["created"]

                timed("api-fhir", api_fhir, n)
                print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

        # Baseline: what a first, naive implementation does — one idempotent ORM call per row.
        person = fresh_person()
        baseline_series = series[: args.baseline]
        started = time.perf_counter()
        for t, value in baseline_series:
            Observation.objects.get_or_create(
                person=person,
                kind="cgm",
                effective_at=t.replace(tzinfo=dt.timezone.utc),
                defaults={"value_mg_dl": value, "original_value": value, "original_unit": "mg/dL", "source": "baseline"},
            )
        baseline_seconds = (time.perf_counter() - started) * n / args.baseline

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\nImporting {n:,} readings (median of {args.runs} runs; PostgreSQL "
            f"{connection.pg_version // 10000}; {os.cpu_count()} CPUs, load average {load})"
        )
        print(f"{'path':<12} {'seconds':>8} {'readings/s':>12} {'vs baseline':>12}")
        for name, values in timings.items():
            seconds = statistics.median(values)
            print(f"{name:<12} {seconds:8.2f} {n / seconds:12,.0f} {baseline_seconds / seconds:11.0f}x")
        print(
            f"{'baseline':<12} {baseline_seconds:8.2f} {n / baseline_seconds:12,.0f} {'1':>11}x"
            f"   (per-row get_or_create of {args.baseline:,}, extrapolated)"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
