"""What PostgreSQL row-level security costs: the same requests and the same batch, in the same run,
with it and without it.

    .venv/bin/python bench/row_security_cost.py [--requests 300] [--people 300] [--runs 3]

Warm forecasts: two gunicorn servers side by side on the same embedded PostgreSQL — glucast as
it is (each request in one transaction whose context is set with SET LOCAL, the app's role bound
by the policies) and bench/settings_without_rls.py (no request transaction or context, the
superuser, whom policies skip). One person with a trained model; warm forecasts and the trivial
GET /api/me/ alternate between the servers so both see the same machine load.

Batch: predict_batch() for --people people with models, in this process, alternately as the
app's role in the explicit context for everyone and as the superuser; medians of --runs runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from batch_forecast import create_people, register_models, remove_previous  # noqa: E402
from forecast_latency import (  # noqa: E402
    Client,
    Server,
    fresh_person,
    percentiles,
    register_model,
    setup_django,
    show,
    trained_files,
)


def requests(args, token) -> None:
    with Server() as with_rls, Server(settings_module="bench.settings_without_rls") as without_rls:
        clients = {"with RLS": Client(with_rls.port, token), "without RLS": Client(without_rls.port, token)}
        for _ in range(40):  # warm both workers of each server, interleaved (keep-alive is 2 s)
            for client in clients.values():
                status, body, _ = client.call("POST", "/api/predictions/glucose/", {})
                assert status == 201, (status, body)
                client.call("GET", "/api/me/")
        timings = {(name, kind): [] for name in clients for kind in ("trivial", "warm")}
        for _ in range(args.requests):
            for name, client in clients.items():
                status, _, ms = client.call("GET", "/api/me/")
                assert status == 200
                timings[(name, "trivial")].append(ms)
                status, body, ms = client.call("POST", "/api/predictions/glucose/", {})
                assert status == 201 and body["model"]["variant"] == "stable", body
                timings[(name, "warm")].append(ms)
    print("\nRequests over one keep-alive connection per server, interleaved:")
    stats = {key: percentiles(values) for key, values in timings.items()}
    for key in sorted(stats):
        show(f"{key[1]} ({key[0]})", stats[key])
    for kind in ("trivial", "warm"):
        on, off = stats[("with RLS", kind)], stats[("without RLS", kind)]
        print(f"  {kind}: with/without RLS p50 {on['p50'] / off['p50']:.2f}x (+{on['p50'] - off['p50']:.2f} ms), "
              f"p95 {on['p95'] / off['p95']:.2f}x (+{on['p95'] - off['p95']:.2f} ms)")


def batch(args) -> None:
    from django.db import connection

    from predictions.batch import predict_batch
    from predictions.cache import reset_forecaster_cache
    from predictions.models import PredictionLog

    model_files = [trained_files(seed=seed) for seed in range(2)]
    remove_previous()
    people = create_people(args.people)
    register_models(people, model_files, version="1.0.0", distinct=False)
    app_role = connection.settings_dict["USER"]
    times = {"with RLS": [], "without RLS": []}
    for run in range(args.runs):
        for label, user in (("with RLS", app_role), ("without RLS", "postgres")):
            connection.close()
            connection.settings_dict["USER"] = user
            from persons.row_security import everyone

            with everyone("benchmark batch"):
                PredictionLog.objects.filter(person__in=people, source="batch").delete()
                reset_forecaster_cache()
                started = time.perf_counter()
                predict_batch()
                times[label].append(time.perf_counter() - started)
    connection.close()
    connection.settings_dict["USER"] = app_role
    print(f"\nBatch predict_batch() for {len(people)} people, median of {args.runs} runs each, alternating:")
    on, off = statistics.median(times["with RLS"]), statistics.median(times["without RLS"])
    print(f"  with RLS {on:.2f} s   without RLS {off:.2f} s   ratio {on / off:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    setup_django()
    files, algorithm = trained_files(seed=0)
    person, token = fresh_person("bench-rls", seed=1)
    register_model(person, files, algorithm, version="1.0.0")
    requests(args, token)
    batch(args)


if __name__ == "__main__":
    main()
