"""Readings per second through the Nightscout upload path, and upload -> fresh forecast.

    GLUCAST_PGDATA=var/pg-bench .venv/bin/python bench/nightscout_upload.py [--single 200] [--catchups 15]

Runs in-process (Django's test client: URL routing, secret authentication, throttle, body
check, parsing, validation, bulk insert, JSON answer) against a throw-away database on the
configured PostgreSQL. Against glucast's own REST API (POST /api/observations/, token auth)
with the same readings in the same run, as the baseline:

  single      one xDrip+-format entry per POST, a new reading each time (the every-5-minutes case)
  catch-up    288 entries (a day) in one POST, fresh readings
  re-send     the same 288 again: all duplicates (an uploader re-sending the last day)
  forecast    one new reading POSTed to /ns/, then POST /api/predictions/glucose/ at once:
              time until a forecast that used the new reading is served (AR2 baseline model,
              as for a person without a trained model); and predict_batch for that person,
              what the 5-minute schedule runs after the upload
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def xdrip_entry(moment: dt.datetime, value: int) -> dict:
    ms = int(moment.timestamp() * 1000)
    stamp = moment.astimezone(dt.timezone(dt.timedelta(hours=1))).strftime("%Y-%m-%dT%H:%M:%S.000%z")
    return {"device": "xDrip-DexcomG6", "date": ms, "dateString": stamp, "sgv": value, "delta": 1.0,
            "direction": "Flat", "type": "sgv", "filtered": value * 1000.0, "unfiltered": value * 1000.0,
            "rssi": 100, "noise": 1, "sysTime": stamp}


def value_at(k: int) -> int:
    import math

    return int(round(125 + 35 * math.sin(2 * math.pi * k / 288) + 10 * math.sin(2 * math.pi * k / 37)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single", type=int, default=200, help="1-entry uploads per path")
    parser.add_argument("--catchups", type=int, default=15, help="288-entry uploads per path")
    parser.add_argument("--forecasts", type=int, default=30)
    args = parser.parse_args()

    import django

    django.setup()
    from persons.row_security import everyone

    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from observations.nightscout.secrets import issue_secret
    from persons.services import create_person
    from predictions.batch import predict_batch

    setup_test_environment()
    logging.getLogger("django-q").setLevel(logging.WARNING)
    logging.getLogger("django.request").setLevel(logging.ERROR)
    logging.getLogger("predictions").setLevel(logging.WARNING)
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["nightscout"] = "1000000/min"
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["forecast"] = "1000000/min"
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = "glucast_bench_nightscout"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    # Set-up and checks over many people: the explicit row-security context for everyone, on the
    # bench database's connection (entered once it exists: creating it reconnects, and the context
    # set on the old connection would be gone). Kept referenced: a collected context would end.
    bench_context = everyone("benchmark")
    bench_context.__enter__()
    try:
        counter = iter(range(10_000))

        def fresh_person():
            person, _, token = create_person(f"ns{next(counter)}", password="bench-password-123", time_zone="UTC")
            secret = issue_secret(person=person)
            api = APIClient()
            api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            return person, hashlib.sha1(secret.encode()).hexdigest(), api

        ns = Client()
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

        def ns_post(sha1, body):
            response = ns.post("/ns/api/v1/entries", json.dumps(body), content_type="application/json", HTTP_API_SECRET=sha1)
            assert response.status_code == 200, response.content
            assert len(response.json()) == (len(body) if isinstance(body, list) else 1)
            return int(response["X-Glucast-Created"])

        def api_post(api, body):
            response = api.post("/api/observations/", body, format="json")
            assert response.status_code == 201, response.data
            return response.data

        def as_api(entries):
            return [{"effective_at": dt.datetime.fromtimestamp(e["date"] / 1000, dt.timezone.utc).isoformat(),
                     "value": e["sgv"], "unit": "mg/dL"} for e in entries]

        results: dict[str, list[float]] = {}

        def timed(name, fn):
            started = time.perf_counter()
            fn()
            results.setdefault(name, []).append(time.perf_counter() - started)

        # Warm-up (URL resolution, imports).
        _, sha1, api = fresh_person()
        ns_post(sha1, xdrip_entry(now - dt.timedelta(days=30), 120))
        api_post(api, as_api([xdrip_entry(now - dt.timedelta(days=30), 120)]))

        # Single entries: a new reading per POST, interleaved with the baseline.
        _, sha1, _ = fresh_person()
        _, _, api = fresh_person()
        start = now - dt.timedelta(minutes=5 * args.single)
        for k in range(args.single):
            entry = xdrip_entry(start + dt.timedelta(minutes=5 * k), value_at(k))
            timed("ns single", lambda: ns_post(sha1, entry))
            timed("api single", lambda: api_post(api, as_api([entry])))

        # Catch-ups: 288 fresh entries per POST, then the same again (all duplicates).
        for run in range(args.catchups):
            _, sha1, _ = fresh_person()
            _, _, api = fresh_person()
            day = [xdrip_entry(now - dt.timedelta(days=1) + dt.timedelta(minutes=5 * k), value_at(k)) for k in range(288)]
            timed("ns catch-up", lambda: ns_post(sha1, day))
            timed("api catch-up", lambda: api_post(api, as_api(day)))
            timed("ns re-send", lambda: ns_post(sha1, day))

        # Upload -> fresh forecast: 3 h of history, then each round one new reading.
        person, sha1, api = fresh_person()
        history_start = now - dt.timedelta(hours=3)
        ns_post(sha1, [xdrip_entry(history_start + dt.timedelta(minutes=5 * k), value_at(k)) for k in range(36)])
        to_forecast, to_batch = [], []
        for k in range(args.forecasts):
            # Readings "from the future" are refused, so each round backdates the clock a little:
            # the newest reading is always one minute old, as a live upload would be.
            moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1) - dt.timedelta(seconds=args.forecasts - k)
            entry = xdrip_entry(moment, value_at(36 + k))
            started = time.perf_counter()
            ns_post(sha1, entry)
            response = api.post("/api/predictions/glucose/", {"horizons": [30, 60]}, format="json")
            elapsed = time.perf_counter() - started
            assert response.status_code in (200, 201), response.data
            window_end = dt.datetime.fromisoformat(response.data["provenance"]["window_end"].replace("Z", "+00:00"))
            assert window_end >= moment.replace(microsecond=0) - dt.timedelta(minutes=5), (window_end, moment)
            assert response.data["quality"]["data_age_min"] <= 1.5, response.data["quality"]
            to_forecast.append(elapsed)
            started = time.perf_counter()
            batch = predict_batch([person])
            to_batch.append(time.perf_counter() - started)
            assert batch.n_forecasts == 1, batch

        def ms(values):
            return statistics.median(values) * 1000

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nNightscout upload path (median; in-process test client; PostgreSQL {connection.pg_version // 10000}; "
              f"{os.cpu_count()} CPUs, load average {load})")
        print(f"{'path':<16} {'n':>5} {'median ms':>10} {'readings/s':>11} {'vs /api/observations/':>22}")
        for name, size, base in (("ns single", 1, "api single"), ("ns catch-up", 288, "api catch-up"),
                                 ("ns re-send", 288, "api catch-up")):
            median = statistics.median(results[name])
            ratio = statistics.median(results[base]) / median
            print(f"{name:<16} {len(results[name]):5d} {median * 1000:10.1f} {size / median:11,.0f} {ratio:21.2f}x")
        for name, size in (("api single", 1), ("api catch-up", 288)):
            median = statistics.median(results[name])
            print(f"{name:<16} {len(results[name]):5d} {median * 1000:10.1f} {size / median:11,.0f} {'(baseline)':>22}")
        p95 = sorted(to_forecast)[int(0.95 * (len(to_forecast) - 1))] * 1000
        print(f"\nupload 1 entry -> forecast served that used it: median {ms(to_forecast):.1f} ms, p95 {p95:.1f} ms "
              f"(n={len(to_forecast)})")
        print(f"predict_batch for that person after the upload (the 5-minute schedule's work): median {ms(to_batch):.1f} ms; "
              f"the scheduled path adds the wait for the next run, at most {settings.GLUCAST_NIGHTSCOUT_PULL_INTERVAL_MIN} min")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
