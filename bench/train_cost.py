"""Cost of training one person: wall time on one core and peak memory.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/train_cost.py [--days 14] [--csv PATH --subject NAME]

Trains a 14-day synthetic person (daily meal rhythm + random walk + sensor noise; the Broll people
have at most ~13 days of readings) and, when the Broll file is present, the Broll person with
the most readings. Prints wall and CPU time (median of --repeat runs; on a shared machine the CPU time is
the fairer figure of our own cost), tracemalloc peak of a separate traced run, and the
process's peak resident memory (ru_maxrss). Also times loading a stored
model (from_files) and one forecast of all 24 short horizons, the serving hot spots.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/xgboost load: the cost is per core

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlmodels.core.features import HORIZONS  # noqa: E402
from mlmodels.core.forecaster import GlucoseForecaster  # noqa: E402
from mlmodels.core.training import train_forecaster  # noqa: E402
from tests.core.synthetic import synthetic_person  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "broll2021_cgm.csv"


def measure(label: str, readings: pd.DataFrame, tz: str, repeat: int) -> None:
    times, cpu_times = [], []
    for i in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = train_forecaster(readings, tz=tz, time_budget_s=15.0, random_state=i)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    tracemalloc.start()
    train_forecaster(readings, tz=tz, time_budget_s=15.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    files = result.forecaster.to_files()
    loads, predicts, load_cpu, predict_cpu = [], [], [], []
    recent = readings.iloc[-40:]
    for _ in range(30):
        started, cpu_started = time.perf_counter(), time.process_time()
        loaded = GlucoseForecaster.from_files(files)
        loads.append(time.perf_counter() - started)
        load_cpu.append(time.process_time() - cpu_started)
    loaded.predict(recent, horizons=HORIZONS, tz=tz)
    for _ in range(100):
        started, cpu_started = time.perf_counter(), time.process_time()
        loaded.predict(recent, horizons=HORIZONS, tz=tz)
        predicts.append(time.perf_counter() - started)
        predict_cpu.append(time.process_time() - cpu_started)
    batch = [(readings, t) for t in readings["time"].iloc[-1000:]]
    started = time.perf_counter()
    loaded.predict_many(batch, horizons=HORIZONS, tz=tz)
    batch_s = time.perf_counter() - started
    span = (readings["time"].max() - readings["time"].min()) / pd.Timedelta(days=1)
    size_kb = sum(len(v) for v in files.values()) / 1024
    print(
        f"{label:<28} {span:5.1f} d {len(readings):6d} readings | train wall median {statistics.median(times):5.2f} s "
        f"max {max(times):5.2f} s, cpu median {statistics.median(cpu_times):5.2f} s | tracemalloc peak "
        f"{peak / 2**20:6.1f} MB | algorithm {result.algorithm}"
    )
    print(
        f"{'':<28} stored model {size_kb:6.0f} kB | from_files median {statistics.median(loads) * 1000:5.1f} ms "
        f"(cpu {statistics.median(load_cpu) * 1000:5.1f}) | predict 24 horizons median "
        f"{statistics.median(predicts) * 1000:5.2f} ms p95 {sorted(predicts)[94] * 1000:5.2f} ms "
        f"(cpu median {statistics.median(predict_cpu) * 1000:5.2f}) | predict_many 1000 origins {batch_s:5.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    args = parser.parse_args()
    print(f"training cost, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, xgboost nthread=1, "
          f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (other work on the machine slows this)")
    measure(f"synthetic {args.days:g} days", synthetic_person(days=args.days, seed=11, tz="Europe/Berlin"),
            "Europe/Berlin", args.repeat)
    if args.csv.exists():
        data = pd.read_csv(args.csv)
        subject = data["subject"].value_counts().idxmax()
        person = data.loc[data["subject"] == subject, ["time", "glucose_mg_dl"]].copy()
        person["time"] = pd.to_datetime(person["time"]).dt.tz_localize("UTC")
        measure(f"Broll {subject} (all data)", person, "UTC", args.repeat)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (ru_maxrss): {maxrss_mb:.0f} MB")


if __name__ == "__main__":
    main()
