"""Cost of one AndroidAPS request on Nightscout API v3, against API v1 in the same run.

    GLUCAST_PGDATA=var/pg-bench .venv/bin/python bench/nightscout_v3.py [--n 100]

In-process (Django's test client: routing, JWT or secret authentication, Date check, throttle,
body check, parsing, validation, insert, JSON answer) against a throw-away database on the
configured PostgreSQL. AndroidAPS sends one record per request, so the per-request cost is
what a day's backlog (~300 readings and as many treatments) costs:

  entry        one AndroidAPS glucose value: POST /ns/api/v3/entries  vs POST /ns/api/v1/entries
  treatment    one AndroidAPS bolus:         POST /ns/api/v3/treatments vs POST /ns/api/v1/treatments
  history      GET /ns/api/v3/entries/history/<ms>?limit=500 over the n readings stored above,
               and GET /ns/api/v3/lastModified (AndroidAPS' every-cycle calls)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="requests per path")
    args = parser.parse_args()

    import django

    django.setup()
    from persons.row_security import everyone

    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from observations.nightscout.secrets import issue_secret
    from observations.nightscout.tokens import issue_access_token
    from persons.services import create_person

    setup_test_environment()
    logging.getLogger("django.request").setLevel(logging.ERROR)
    for scope in ("nightscout", "nightscout-v3"):
        settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope] = "1000000/min"
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = "glucast_bench_nightscout_v3"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    # Set-up over many people: the explicit row-security context for everyone, on the test
    # database's connection (kept referenced: a collected context manager would end).
    bench_context = everyone("benchmark")
    bench_context.__enter__()
    try:
        counter = iter(range(10_000))

        def fresh_person():
            person, _, _ = create_person(f"v3-{next(counter)}", password="bench-password-123", time_zone="Europe/Vienna")
            sha1 = hashlib.sha1(issue_secret(person=person).encode()).hexdigest()
            client = Client()
            token = issue_access_token(person=person)
            jwt = client.get(f"/api/v2/authorization/request/{token}").json()["token"]
            return sha1, {"HTTP_AUTHORIZATION": f"Bearer {jwt}"}

        client = Client()
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        start = now - dt.timedelta(minutes=5 * (args.n + 2))

        def entry(k):
            return {"type": "sgv", "sgv": 120.0 + k % 40, "date": int((start + dt.timedelta(minutes=5 * k)).timestamp() * 1000),
                    "device": "DexcomG6", "direction": "Flat", "utcOffset": 60, "isReadOnly": False, "isValid": True,
                    "filtered": 0.0, "unfiltered": 0.0, "units": "mg/dl", "app": "AAPS"}

        def bolus(k):
            return {"date": int((start + dt.timedelta(minutes=5 * k, seconds=30)).timestamp() * 1000), "utcOffset": 60,
                    "isReadOnly": False, "isValid": True, "eventType": "Correction Bolus", "insulin": 0.2 + (k % 5) / 10,
                    "type": "SMB", "isBasalInsulin": False, "pumpId": 5000 + k, "pumpType": "DANA_I",
                    "pumpSerial": "AAB12345FI", "app": "AAPS"}

        results: dict[str, list[float]] = {}

        def timed(name, fn, expect):
            started = time.perf_counter()
            response = fn()
            results.setdefault(name, []).append(time.perf_counter() - started)
            assert response.status_code == expect, (name, response.status_code, response.content[:300])

        def post(path, body, **headers):
            return client.post(path, json.dumps(body), content_type="application/json",
                               HTTP_DATE=str(int(time.time() * 1000)), **headers)

        v1_sha1, v3_headers = fresh_person()
        post("/ns/api/v3/entries", entry(-1), **v3_headers)  # warm-up (imports, URL resolution)
        post("/ns/api/v1/entries", entry(-1), HTTP_API_SECRET=v1_sha1)
        for k in range(args.n):
            timed("v3 entry", lambda: post("/ns/api/v3/entries", entry(k), **v3_headers), 201)
            timed("v1 entry", lambda: post("/ns/api/v1/entries", entry(k), HTTP_API_SECRET=v1_sha1), 200)
            timed("v3 treatment", lambda: post("/ns/api/v3/treatments", bolus(k), **v3_headers), 201)
            timed("v1 treatment", lambda: post("/ns/api/v1/treatments", bolus(k), HTTP_API_SECRET=v1_sha1), 200)
        since = int((now - dt.timedelta(days=1)).timestamp() * 1000)
        for _ in range(max(10, args.n // 5)):
            timed("v3 history 500", lambda: client.get(f"/ns/api/v3/entries/history/{since}?limit=500", **v3_headers), 200)
            timed("v3 lastModified", lambda: client.get("/ns/api/v3/lastModified", **v3_headers), 200)
        page = client.get(f"/ns/api/v3/entries/history/{since}?limit=500", **v3_headers).json()["result"]
        assert len(page) == min(args.n + 1, 500), len(page)

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nNightscout API v3 against v1 (median; in-process test client; PostgreSQL "
              f"{connection.pg_version // 10000}; {os.cpu_count()} CPUs, load average {load})")
        print(f"{'request':<18} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'vs v1':>7}")
        for name, base in (("v3 entry", "v1 entry"), ("v3 treatment", "v1 treatment"), ("v1 entry", None),
                           ("v1 treatment", None), ("v3 history 500", None), ("v3 lastModified", None)):
            values = sorted(results[name])
            median = statistics.median(values)
            p95 = values[int(0.95 * (len(values) - 1))]
            ratio = f"{median / statistics.median(results[base]):.2f}x" if base else ""
            print(f"{name:<18} {len(values):5d} {median * 1000:10.1f} {p95 * 1000:8.1f} {ratio:>7}")
        day = 288 * (statistics.median(results["v3 entry"]) + statistics.median(results["v3 treatment"]))
        print(f"\na day's backlog (288 readings + 288 treatments, one request each): {day:.1f} s of server time")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
