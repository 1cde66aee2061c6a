"""Parallel forecasts from several people at once: no errors and no mixed-up people.

    .venv/bin/python bench/parallel_load.py [--people 8] [--requests 60]

The same real stack as bench/forecast_latency.py (gunicorn gthread 2 workers x 4 threads,
embedded PostgreSQL, token auth). Each person has their own readings and their own model version
(a distinct version number and artifact per person, so a forecast served with another person's
model would show it). One client thread per person sends --requests forecasts over its own
keep-alive connection, all threads at once (bounded: people x requests in total), mixing the
default horizons, the 24-hour range and mmol/L.

Checked for every answer: status 201; the model version is the caller's; every observation id
in its provenance is one of the caller's own readings; the logged forecast belongs to the caller
(GET by id answers 200 to them and 404 to the next person). Prints errors, mix-ups, throughput
and latency percentiles under this load.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from forecast_latency import (  # noqa: E402
    Client,
    Server,
    distinct_copy,
    fresh_person,
    percentiles,
    register_model,
    setup_django,
    show,
    trained_files,
)

BODIES = [{}, {"range": "24h"}, {"horizons": [15, 45, 90], "unit": "mmol/L"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--requests", type=int, default=60, help="forecasts per person")
    args = parser.parse_args()

    setup_django()
    from observations.models import Observation

    files, algorithm = trained_files(seed=0)
    people = []
    for i in range(args.people):
        person, token = fresh_person(f"bench-parallel-{i}", days=1, seed=100 + i)
        version = f"1.{i}.0"
        register_model(person, distinct_copy(files, f"parallel-{i}"), algorithm, version=version)
        own_ids = set(Observation.objects.for_person(person).values_list("id", flat=True))
        people.append({"person": person, "token": token, "version": version, "ids": own_ids})
    print(f"set-up: {args.people} people, each with 1 day of readings and their own model version")

    results = [[] for _ in people]
    problems: list[str] = []
    lock = threading.Lock()

    def report(text: str) -> None:
        with lock:
            if len(problems) < 20:
                problems.append(text)

    def run(index: int, barrier: threading.Barrier) -> None:
        me = people[index]
        client = Client(server.port, me["token"])
        client.call("GET", "/api/me/")
        barrier.wait()
        for k in range(args.requests):
            try:
                status, body, ms = client.call("POST", "/api/predictions/glucose/", BODIES[k % len(BODIES)])
            except Exception as exc:  # noqa: BLE001 - counted as an error
                report(f"person {index}: {exc!r}")
                client = Client(server.port, me["token"])
                results[index].append(("error", None, None))
                continue
            results[index].append((status, body, ms))
            if status != 201:
                report(f"person {index}: HTTP {status} {str(body)[:200]}")

    with Server() as server:
        barrier = threading.Barrier(len(people) + 1)
        threads = [threading.Thread(target=run, args=(i, barrier)) for i in range(len(people))]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        errors = mixups = checked_logs = 0
        latencies = []
        for index, me in enumerate(people):
            neighbour = people[(index + 1) % len(people)]
            owner_client, other_client = Client(server.port, me["token"]), Client(server.port, neighbour["token"])
            for n, (status, body, ms) in enumerate(results[index]):
                if status != 201:
                    errors += 1
                    continue
                latencies.append(ms)
                observed = set(body["provenance"]["observations"])
                if body["model"]["version"] != me["version"] or not observed <= me["ids"] or not observed:
                    mixups += 1
                    report(f"person {index}: answer with version {body['model']['version']} / foreign readings")
                if n % 10 == 0 and len(people) > 1:  # the log entry is the caller's and only theirs
                    path = f"/api/predictions/{body['prediction_id']}/"
                    mine, other = owner_client.call("GET", path)[0], other_client.call("GET", path)[0]
                    checked_logs += 1
                    if (mine, other) != (200, 404):
                        mixups += 1
                        report(f"person {index}: log {body['prediction_id']} answered {mine}/{other}")

    total = sum(len(r) for r in results)
    print(f"\nParallel forecasts: {len(people)} people x {args.requests} requests at once over loopback")
    print(f"  requests {total}, errors {errors}, mixed-up answers {mixups} "
          f"(every answer checked; {checked_logs} log entries checked for 200/404)")
    print(f"  throughput {total / elapsed:.1f} forecasts/s over {elapsed:.2f} s")
    if latencies:
        show("latency under this load", percentiles(latencies))
    for line in problems:
        print("  problem:", line)
    load = os.getloadavg()
    print(f"  machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f}")
    if errors or mixups:
        sys.exit(1)


if __name__ == "__main__":
    main()
