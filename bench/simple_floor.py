"""Release 2 against the best simple forecast at every horizon to 2 hours, on every held-out set.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/simple_floor.py [--data DIR] [--people N] [--stride 6]
     [--role test|val] [--sets weinstock2016 colas2019 broll2021] [--range-by forecast|now|none]

The protocol of bench/cold_start.py's scenario A (the same people and functions): the held-out
20% of Weinstock and Colás (the prior's fixed split, never trained or tuned on) and the 5 Broll
people, each set reported separately; per person the first 70% of time is their past, from the
rest a forecast every 30 minutes. On the same origins: persistence, AR2, a per-person ridge on
the 2-hour window of glucose (PlainRidgeForecaster, alpha on the last 20% of the past), and
release 2 as glucast serves it (trained on the past by the real pipeline, served only if it beats
the prior on its own held-out part; else the prior).

Printed per set and horizon (5..120 min): MAE of each, release 2 / best of (persistence, AR2,
ridge) and release 2 / ridge. Goal (issue 19): <= 0.97 against the best everywhere, and never
above 1 against the ridge. `--role val` runs the corpora's validation people instead.

Then release 2's band coverage (80%, 95%) and mean 80% width per glucose range of the outcome
at 30 and 60 min, pooled over the set's origins: the training-time (Mondrian) bands, before any
outcome of the person's own adapts them. `--range-by` tries the other ways of placing a row in a
range (conformal.RANGE_BY; "none": pooled quantiles), on validation people where it is chosen.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.population import RANGES, covered  # noqa: E402
from bench.cold_start import TRAIN_FRACTION, TZ, person_rows, ridge_baseline, served, train_or_none  # noqa: E402
from mlmodels.core import training  # noqa: E402
from mlmodels.core.coldstart import PopulationForecaster  # noqa: E402
from mlmodels.core.features import HORIZONS, build_targets  # noqa: E402
from mlmodels.core.forecaster import BaselineForecaster  # noqa: E402
from mlmodels.core.population import shipped_prior  # noqa: E402
from mlmodels.core.prior_data import CORPUS_FILES, default_data_dir, load_broll, load_corpus, split_subjects  # noqa: E402

METHODS = ("persistence", "ar2", "ridge", "release_2")
SIMPLE = ("persistence", "ar2", "ridge")
GOAL_VS_BEST = 0.97


def score_person(errors: dict, readings, prior) -> str | None:
    """Absolute errors (origins x HORIZONS) of every method for one person; what release 2 served."""
    t0, t1 = readings["time"].iloc[0], readings["time"].iloc[-1]
    rows = person_rows(readings, t0 + (t1 - t0) * TRAIN_FRACTION, errors["stride"], prior)
    if rows is None:
        return None
    past_readings, grid, X1, X2, Y, past, origins = rows
    times = grid.index
    now = X1[origins, 0]
    actual = now[:, None] + build_targets(grid, HORIZONS, observed_only=True).to_numpy()[origins]
    result = train_or_none(past_readings, prior=prior)
    model, chose = served(result, past_readings, PopulationForecaster(prior), "prior", TZ)
    t_ns = times.asi8[origins]
    values = {
        "persistence": np.repeat(now[:, None], len(HORIZONS), axis=1),
        "ar2": BaselineForecaster(tz=TZ).forecast_matrix(X1[origins], t_ns, HORIZONS, TZ)["value"],
        "ridge": now[:, None] + ridge_baseline(X1, Y, past).predict(X1[origins]),
        "release_2": model.forecast_matrix((X1 if model.features.version == 1 else X2)[origins], t_ns, HORIZONS, TZ)["value"],
    }
    for name, value in values.items():
        errors[name].append(np.abs(value - actual))
    out = model.forecast_matrix((X1 if model.features.version == 1 else X2)[origins], t_ns, HORIZONS, TZ)
    errors["bands"].append((actual, {k: out[k] for k in ("lower_80", "upper_80", "lower_95", "upper_95")}))
    if result is not None and chose == "model":
        return "model: " + ",".join(sorted(set(result.hyperparameters.get("per_horizon_choice", {}).values()) or {"blend"}))
    return chose


def report_bands(pairs) -> None:
    """Coverage 80% (95%) and mean 80% width per outcome range at 30 and 60 min, pooled."""
    actual = np.vstack([a for a, _ in pairs])
    bands = {k: np.vstack([b[k] for _, b in pairs]) for k in pairs[0][1]}
    print("  release 2's bands, by outcome range: 80% coverage (95%) [outcomes] mean 80% width")
    for h in (30, 60):
        j = HORIZONS.index(h)
        a = actual[:, j]
        ok = np.isfinite(a)
        parts = []
        for name, low, high in (("all", -np.inf, np.inf), *RANGES):
            rows = ok & (a >= low) & (a < high)
            if not rows.any():
                parts.append(f"{name} -")
                continue
            c80 = covered(a[rows], bands["lower_80"][rows, j], bands["upper_80"][rows, j]).mean()
            c95 = covered(a[rows], bands["lower_95"][rows, j], bands["upper_95"][rows, j]).mean()
            width = (bands["upper_80"][rows, j] - bands["lower_80"][rows, j]).mean()
            parts.append(f"{name} {c80:.3f} ({c95:.3f}) [{rows.sum()}] {width:.1f}")
        print(f"    {h:>3d} min: " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--people", type=int, default=0, help="at most N held-out people per corpus (0 = all)")
    parser.add_argument("--stride", type=int, default=6)
    parser.add_argument("--role", choices=["test", "val"], default="test")
    parser.add_argument("--sets", nargs="+", default=[*CORPUS_FILES, "broll2021"])
    parser.add_argument("--range-by", choices=["forecast", "now", "none"], default=None)
    args = parser.parse_args()
    if args.range_by:
        training.RELEASE_2_RANGE_BY = None if args.range_by == "none" else args.range_by
    prior = shipped_prior()
    print(f"glucast simple-floor bench — prior {prior.version}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load {os.getloadavg()[0]:.1f}, role {args.role}")
    sets = {}
    for corpus, name in CORPUS_FILES.items():
        if corpus not in args.sets:
            continue
        everyone = load_corpus(args.data / name)
        roles = split_subjects(corpus, everyone)
        chosen = [s for s in sorted(everyone) if roles[s] == args.role]
        sets[corpus] = {s: everyone[s] for s in (chosen[: args.people] if args.people else chosen)}
    if args.role == "test" and "broll2021" in args.sets:
        sets["broll2021"] = load_broll(args.data)
    started = time.perf_counter()
    worst = defaultdict(float)
    for corpus, people in sets.items():
        errors = defaultdict(list, stride=args.stride)
        served_counts = Counter()
        for readings in people.values():
            chose = score_person(errors, readings, prior)
            if chose is not None:
                served_counts[chose] += 1
        mae = {m: np.nanmean(np.vstack(errors[m]), axis=0) for m in METHODS}
        n_origins = sum(len(e) for e in errors["ridge"])
        print(f"\n{corpus}: {sum(served_counts.values())} people, {n_origins} origins; served {dict(served_counts)}")
        print(f"{'min':>5s} " + "".join(f"{m:>12s}" for m in METHODS) + "   r2/best  r2/ridge  best simple")
        for j, h in enumerate(HORIZONS):
            best_name = min(SIMPLE, key=lambda m: mae[m][j])
            vs_best = mae["release_2"][j] / mae[best_name][j]
            vs_ridge = mae["release_2"][j] / mae["ridge"][j]
            worst[(corpus, "best")] = max(worst[(corpus, "best")], vs_best)
            worst[(corpus, "ridge")] = max(worst[(corpus, "ridge")], vs_ridge)
            flag = "" if vs_best <= GOAL_VS_BEST and vs_ridge <= 1 else "  <- goal missed"
            print(f"{h:>5d} " + "".join(f"{mae[m][j]:>12.2f}" for m in METHODS)
                  + f"   {vs_best:7.3f}  {vs_ridge:8.3f}  {best_name}{flag}")
        report_bands(errors["bands"])
    print("\nworst ratio over horizons 5..120 min (goal <= 0.97 vs best, <= 1 vs ridge): " + "; ".join(
        f"{c} {worst[(c, 'best')]:.3f} / {worst[(c, 'ridge')]:.3f}" for c in sets))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
