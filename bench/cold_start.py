"""Release 1 vs release 2 on people the models never saw, and cold start after 1 and 2 days.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/cold_start.py [--data DIR] [--people N] [--stride 6]

People: the held-out 20% of each training corpus of the population prior (weinstock2016,
colas2019; the fixed split of mlmodels/core/prior_data.py, never trained or tuned on) and the 5
Broll people (never trained on). `--people N` takes the first N held-out people of each corpus
(in the split's own order), for a quicker run. `--role val` runs the corpora's validation people
instead (no Broll): the two settings chosen on them can be tried there with other values,
`--far-default 0.333 0.333` (far weights without evidence; shipped 1 0) and `--band-widen 1.15`
(the population bands' widening; shipped 1.0), e.g. `--role val --only cold --no-costs`.

A. Unseen people (the black-box protocol of bench/population.py): the first 70% of each person's
   time is their past, from the rest a forecast every 30 minutes (`--stride 6` slots). On the same
   origins: persistence, AR2, a per-person ridge fitted on the past (alpha chosen on its last 20%),
   the prior alone, release 1 and release 2 *as glucast serves them*: each trained on the past by
   the real pipeline and served only if it beats its reference on its own held-out part
   (deploy-if-better: release 1 against AR2, release 2 against the prior); otherwise the reference
   answers (release 1 below 3 days of data: AR2, release 2 below 1 day: the prior).
B. Cold start: only the person's first 1 (and 2) days are known; forecasts from every 30 minutes
   of the rest of their data. The baselines are fitted on those same first days.
C. Short history: from every 30 minutes of the same 30% (scenario A's origins), only the current
   reading and the one 5 minutes before are known (the first minutes after a sensor change):
   AR2 with its plain population bands, with the one table for everybody the short-history
   answer had before (AR2's bands x1.3), and with the table of the person's variability class
   (mlmodels/core/short_history.py: their glucose SD over the 7 days before origin - 2 h, as
   serving reads it); coverage overall, per person, per class, and where the outcome is < 70.
D. Costs: training one person's release-2 model on 14 synthetic days (one core, median of 3), and
   the warm forecast of one window (fast path, as served), release 2 vs release 1, p50/p95 over
   interleaved calls in the same run.

MAE/RMSE in mg/dL pooled over all origins of a corpus; "best simple" = the best of persistence,
AR2 and ridge per corpus and horizon; ratios < 1 are better than it. Coverage of the 80%/95% bands
pooled over origins, and per person (min / median / max).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.population import RANGES, covered  # noqa: E402
from mlmodels.core import coldstart, training  # noqa: E402
from mlmodels.core.coldstart import PopulationForecaster, ShortHistoryForecaster  # noqa: E402
from mlmodels.core.estimators import PlainRidgeForecaster  # noqa: E402
from mlmodels.core.evaluation import DEPLOY_HORIZONS, FAR_TIEBREAK_HORIZONS, decide  # noqa: E402
from mlmodels.core.features import HORIZONS, build_targets  # noqa: E402
from mlmodels.core.forecaster import (  # noqa: E402
    BASELINE_HALF_WIDTH_HORIZONS,
    BASELINE_HALF_WIDTH_LOG,
    CLAMP_HIGH,
    CLAMP_LOW,
    BaselineForecaster,
)
from mlmodels.core.population import shipped_prior  # noqa: E402
from mlmodels.core.preparation import prepare_grid  # noqa: E402
from mlmodels.core.prior_data import (  # noqa: E402
    CORPUS_FILES,
    default_data_dir,
    load_broll,
    load_corpus,
    split_subjects,
)
from mlmodels.core.profile import TimeOfDayProfile  # noqa: E402
from mlmodels.core.schemas import Release1Features, Release2Features  # noqa: E402
from mlmodels.core.short_history import GAP_MARGIN_MIN, ShortHistoryBands, variability  # noqa: E402
from mlmodels.core.training import InsufficientData, evaluate_on, train_forecaster  # noqa: E402

TRAIN_FRACTION = 0.70
SHORT = (30, 60)
FAR = (240, 720, 1440)
EXTRA = (120,)  # scored for coverage (per glucose range) beside SHORT and FAR
SIMPLE = ("persistence", "ar2", "ridge")
METHODS = ("persistence", "ar2", "ridge", "prior", "release_1", "release_2")
TZ = "UTC"  # the corpora hold local clock times, read as UTC (as in bench/population.py)


def ridge_baseline(X1: np.ndarray, Y: np.ndarray, past: np.ndarray) -> PlainRidgeForecaster:
    """A per-person ridge on release-1 features: alpha on the last 20% of the past, refitted on all."""
    rows = np.flatnonzero(past & np.isfinite(X1).all(axis=1) & np.isfinite(Y).all(axis=1))
    cut = rows[int(len(rows) * 0.8)] if len(rows) else 0
    fit, val = rows[rows < cut], rows[rows >= cut]
    tuned = PlainRidgeForecaster().fit(X1[fit], Y[fit], X1[val], Y[val])
    return PlainRidgeForecaster(alpha=tuned.alpha).fit(X1[rows], Y[rows])


def served(result, readings, reference, fallback_name: str, tz: str):
    """What glucast serves after deploy-if-better (the rule of mlmodels.core.evaluation.decide, as
    the training job applies it): the trained model if it beats `reference` on its own held-out
    part, else the reference."""
    if result is None:
        return reference, fallback_name
    start, end = result.test_period
    horizons = list(DEPLOY_HORIZONS) + list(FAR_TIEBREAK_HORIZONS)
    own = evaluate_on(result.evaluated_forecaster, readings, start, end, tz=tz, horizons=horizons)
    ref = evaluate_on(reference, readings, start, end, tz=tz, horizons=horizons)
    if decide(own, ref)["better"]:
        return result.forecaster, "model" if result.algorithm != "prior_with_profile" else "prior+profile"
    return reference, fallback_name


def train_or_none(readings, **kwargs):
    try:
        return train_forecaster(readings, tz=TZ, **kwargs)
    except InsufficientData:
        return None


class Tally:
    """Pooled absolute/squared errors and band hits per (scenario, corpus, method, horizon)."""

    def __init__(self):
        self.err = defaultdict(list)
        self.hit = defaultdict(list)
        self.range_hit = defaultdict(list)
        self.person_cov = defaultdict(list)
        self.chosen = defaultdict(lambda: defaultdict(int))

    def add(self, key, horizon, value, actual, bands=None):
        ok = np.isfinite(actual) & np.isfinite(value)
        self.err[key + (horizon,)].append(value[ok] - actual[ok])
        if bands is not None:
            a = actual[ok]
            for level in (80, 95):
                inside = covered(a, bands[f"lower_{level}"][ok], bands[f"upper_{level}"][ok])
                self.hit[key + (horizon, level)].append(inside)
                for name, low, high in RANGES:
                    in_range = (a >= low) & (a < high)
                    self.range_hit[key + (horizon, level, name)].append(inside[in_range])
                if ok.sum() >= 10:
                    self.person_cov[key + (horizon, level)].append(float(inside.mean()))

    def mae(self, key, h):
        e = self.err.get(key + (h,))
        return float(np.mean(np.abs(np.concatenate(e)))) if e and sum(map(len, e)) else float("nan")

    def rmse(self, key, h):
        e = self.err.get(key + (h,))
        return float(np.sqrt(np.mean(np.concatenate(e) ** 2))) if e and sum(map(len, e)) else float("nan")

    def coverage(self, key, h, level):
        v = self.hit.get(key + (h, level))
        return float(np.mean(np.concatenate(v))) if v and sum(map(len, v)) else float("nan")

    def range_coverage(self, key, h, level, name) -> tuple[float, int]:
        v = self.range_hit.get(key + (h, level, name))
        n = sum(map(len, v)) if v else 0
        return (float(np.mean(np.concatenate(v))) if n else float("nan")), n


def person_rows(readings: pd.DataFrame, known_until, stride: int, prior):
    """(past readings, grid, X1, X2, Y, past mask, origins) of one person, or None where the known
    days hold too few complete windows (e.g. a gap at the start) or the rest too few origins.
    Shared by bench/simple_floor.py."""
    past_readings = readings[readings["time"] < known_until]
    grid = prepare_grid(readings)
    X1 = Release1Features().build_grid(grid, TZ).to_numpy()
    X2 = Release2Features(prior).build_grid(grid, TZ).to_numpy()
    Y = build_targets(grid, HORIZONS).to_numpy()
    past = np.asarray(grid.index < known_until)
    if (past & np.isfinite(X1).all(axis=1) & np.isfinite(Y).all(axis=1)).sum() < 100:
        return None
    origins = np.flatnonzero(
        ~past & grid["observed"].to_numpy() & np.isfinite(X1).all(axis=1) & np.isfinite(X2).all(axis=1)
    )[::stride]
    if len(origins) < 5:
        return None
    return past_readings, grid, X1, X2, Y, past, origins


def score_person(tally: Tally, scenario: str, corpus: str, readings: pd.DataFrame, known_until, stride: int, prior):
    """Fit everything on readings before `known_until`, forecast every `stride` slots after it."""
    rows = person_rows(readings, known_until, stride, prior)
    if rows is None:
        return False
    past_readings, grid, X1, X2, Y, past, origins = rows
    times = grid.index
    horizons = list(SHORT) + list(EXTRA) + list(FAR)
    future = {h: (grid["glucose_mg_dl"].to_numpy() + build_targets(grid, [h], observed_only=True)[f"h{h}"].to_numpy())[origins]
              for h in horizons}
    now = X1[origins, 0]
    t_ns = times.asi8[origins]

    population = PopulationForecaster(prior)
    r1 = train_or_none(past_readings)
    r2 = train_or_none(past_readings, prior=prior)
    model_1, chose_1 = served(r1, past_readings, BaselineForecaster(tz=TZ), "ar2", TZ)
    model_2, chose_2 = served(r2, past_readings, population, "prior", TZ)
    tally.chosen[(scenario, corpus, "release_1")][chose_1] += 1
    tally.chosen[(scenario, corpus, "release_2")][chose_2] += 1

    outs = {
        "ar2": BaselineForecaster(tz=TZ).forecast_matrix(X1[origins], t_ns, horizons, TZ),
        "prior": population.forecast_matrix(X2[origins], t_ns, horizons, TZ),
        "release_1": model_1.forecast_matrix((X1 if model_1.features.version == 1 else X2)[origins], t_ns, horizons, TZ),
        "release_2": model_2.forecast_matrix((X1 if model_2.features.version == 1 else X2)[origins], t_ns, horizons, TZ),
    }
    ridge = ridge_baseline(X1, Y, past).predict(X1[origins])
    profile = TimeOfDayProfile().fit(prepare_grid(past_readings), TZ)
    origin_minutes = (pd.DatetimeIndex(t_ns.astype("datetime64[ns]")).hour * 60
                      + pd.DatetimeIndex(t_ns.astype("datetime64[ns]")).minute).to_numpy()
    for c, h in enumerate(horizons):
        actual = future[h]
        if h <= 120:
            j = HORIZONS.index(h)
            tally.add((scenario, corpus, "persistence"), h, now, actual)
            tally.add((scenario, corpus, "ridge"), h, now + ridge[:, j], actual)
        else:
            tally.add((scenario, corpus, "profile_median"), h, profile.median_at(origin_minutes + h), actual)
        for name, out in outs.items():
            tally.add((scenario, corpus, name), h, out["value"][:, c], actual,
                      {k: out[k][:, c] for k in ("lower_80", "upper_80", "lower_95", "upper_95")})
    return True


class OneTableShortHistory(ShortHistoryForecaster):
    """The short-history answer before the variability classes: AR2's population bands widened
    by 30% for everybody (kept here only to show the change)."""

    def _bands(self, value, horizons, now=None):
        safe = np.clip(value, CLAMP_LOW, CLAMP_HIGH)
        out = {"value": value}
        for tag, table in BASELINE_HALF_WIDTH_LOG.items():
            half = 1.3 * np.interp(np.asarray(horizons, dtype=float), BASELINE_HALF_WIDTH_HORIZONS, table)
            out[f"lower_{tag}"] = safe * np.exp(-half[None, :])
            out[f"upper_{tag}"] = safe * np.exp(half[None, :])
        return out


SHORT_METHODS = ("ar2", "one_table", "by_class")


def score_short_history(tally: Tally, corpus: str, readings: pd.DataFrame, known_until, stride: int) -> bool:
    """Scenario C: AR2 from the current reading and the one before; AR2's plain bands, the one
    table for everybody (before) and the table of the person's variability class, judged from
    their readings of the 7 days before origin - 2 h as serving does (after)."""
    grid = prepare_grid(readings)
    values = grid["glucose_mg_dl"].to_numpy()
    times = grid.index
    before = np.concatenate([[np.nan], values[:-1]])
    origins = np.flatnonzero(
        np.asarray(times >= known_until) & grid["observed"].to_numpy() & np.isfinite(values) & np.isfinite(before)
    )[::stride]
    if len(origins) < 5:
        return False
    X = np.full((len(origins), len(Release1Features().names())), np.nan)
    X[:, 0] = values[origins]
    X[:, Release1Features().names().index("lag_5min")] = before[origins] - values[origins]
    t_ns = times.asi8[origins]
    raw_t = pd.DatetimeIndex(pd.to_datetime(readings["time"], utc=True)).as_unit("ns").asi8
    raw_v = readings["glucose_mg_dl"].to_numpy(dtype=float)
    bands = ShortHistoryBands.load()
    classes = np.array([bands.classify(*variability(raw_t, raw_v, int(t) - GAP_MARGIN_MIN * 60 * 10**9))
                        for t in t_ns])
    actual = {h: values[origins] + build_targets(grid, [h], observed_only=True)[f"h{h}"].to_numpy()[origins]
              for h in SHORT}
    outs = {
        "ar2": BaselineForecaster(tz=TZ).forecast_matrix(X, t_ns, list(SHORT), TZ),
        "one_table": OneTableShortHistory(tz=TZ).forecast_matrix(X, t_ns, list(SHORT), TZ),
    }
    by_class = {k: np.empty((len(origins), len(SHORT))) for k in ("value", "lower_80", "upper_80", "lower_95", "upper_95")}
    for name in np.unique(classes):
        rows = classes == name
        out = ShortHistoryForecaster(tz=TZ, variability_class=str(name)).forecast_matrix(X[rows], t_ns[rows], list(SHORT), TZ)
        for k in by_class:
            by_class[k][rows] = out[k]
    outs["by_class"] = by_class
    for name, out in outs.items():
        for c, h in enumerate(SHORT):
            band = {k: out[k][:, c] for k in ("lower_80", "upper_80", "lower_95", "upper_95")}
            tally.add(("C", corpus, name), h, out["value"][:, c], actual[h], band)
            if name == "by_class":
                for cls in np.unique(classes):
                    rows = classes == cls
                    tally.add(("C-class", corpus, str(cls)), h, out["value"][:, c][rows], actual[h][rows],
                              {k: v[rows] for k, v in band.items()})
    return True


def report_short_history(tally: Tally, corpora) -> None:
    print("\n=== C. short history: only the last two readings known ===")
    print("80% / 95% band coverage at 30 / 60 min (origins pooled); AR2's plain bands | one table for everybody "
          "(AR2's x1.3, before) | by variability class (after); low = outcome < 70 mg/dL, 80% band")
    for corpus in corpora:
        key = ("C", corpus)
        if not tally.err.get(key + ("ar2", 30)):
            continue
        n = sum(map(len, tally.err[key + ("ar2", 30)]))
        n_low = tally.range_coverage(key + ("ar2",), 30, 80, "<70")[1]
        print(f"\n{corpus} ({n} origins, {n_low} with an outcome < 70 at 30 min); MAE 30 / 60 "
              f"{tally.mae(key + ('by_class',), 30):.2f} / {tally.mae(key + ('by_class',), 60):.2f}")
        for name in SHORT_METHODS:
            cov = " / ".join(f"{tally.coverage(key + (name,), h, 80):.3f}" for h in SHORT)
            cov95 = " / ".join(f"{tally.coverage(key + (name,), h, 95):.3f}" for h in SHORT)
            low = " / ".join(f"{tally.range_coverage(key + (name,), h, 80, '<70')[0]:.3f}" for h in SHORT)
            spread = tally.person_cov.get(key + (name, 60, 80)) or [float("nan")]
            print(f"  {name:10s} 80% {cov}   95% {cov95}   low 80% {low}   per person 80% at 60 min min / median / "
                  f"max {min(spread):.2f} / {np.median(spread):.2f} / {max(spread):.2f}")
        classes = sorted({k[2] for k in tally.err if k[:2] == ("C-class", corpus)})
        print("  by class (origins, 80% at 30 / 60): " + "; ".join(
            f"{c} {sum(map(len, tally.err[('C-class', corpus, c, 30)]))} "
            f"{tally.coverage(('C-class', corpus, c), 30, 80):.2f} / {tally.coverage(('C-class', corpus, c), 60, 80):.2f}"
            for c in classes))


def report(tally: Tally, scenario: str, corpora, n_people: dict):
    print(f"\n=== {scenario} ===")
    for corpus in corpora:
        key = (scenario, corpus)
        if not tally.err.get(key + ("ar2", 30)):
            continue
        print(f"\n{corpus} ({n_people.get(key, 0)} people); served: "
              + "; ".join(f"{m} {dict(tally.chosen[key + (m,)])}" for m in ("release_1", "release_2")))
        print(f"{'':14s}" + "".join(f"MAE{h:<5d}RMSE{h:<4d}" for h in SHORT) + "  cov80@30 cov80@60 cov95@60")
        best = {h: min(tally.mae(key + (m,), h) for m in SIMPLE) for h in SHORT}
        for m in METHODS:
            row = "".join(f"{tally.mae(key + (m,), h):<8.2f}{tally.rmse(key + (m,), h):<8.2f}" for h in SHORT)
            cov = ""
            if m not in ("persistence", "ridge"):
                cov = (f"  {tally.coverage(key + (m,), 30, 80):.3f}    {tally.coverage(key + (m,), 60, 80):.3f}   "
                       f" {tally.coverage(key + (m,), 60, 95):.3f}")
            print(f"{m:14s}{row}{cov}")
        for m in ("prior", "release_1", "release_2"):
            print(f"  {m} / best simple: " + ", ".join(
                f"{h} min {tally.mae(key + (m,), h) / best[h]:.3f}" for h in SHORT))
        spread = tally.person_cov.get(key + ("release_2", 60, 80))
        if spread:
            print(f"  release_2 80% coverage at 60 min per person: min {min(spread):.2f} / median "
                  f"{np.median(spread):.2f} / max {max(spread):.2f}")
        if tally.err.get(key + ("profile_median", FAR[0])):
            print("  far MAE (profile median | release_1 | release_2 | prior): " + "; ".join(
                f"{h} min {tally.mae(key + ('profile_median',), h):.1f} | {tally.mae(key + ('release_1',), h):.1f} | "
                f"{tally.mae(key + ('release_2',), h):.1f} | {tally.mae(key + ('prior',), h):.1f}" for h in FAR))
            print("  far 80% coverage (release_2): " + ", ".join(
                f"{h} min {tally.coverage(key + ('release_2',), h, 80):.2f}" for h in FAR))
        report_coverage(tally, key)


def report_coverage(tally: Tally, key) -> None:
    """Coverage of the 80% (95%) bands per horizon, per glucose range of the outcome and per person."""
    print("  band coverage 80% (95%) by outcome range [outcomes], and per person min / median / max of the 80% band:")
    for m in ("prior", "release_1", "release_2"):
        for h in list(SHORT) + list(EXTRA) + list(FAR):
            if not tally.hit.get(key + (m, h, 80)):
                continue
            parts = []
            for name, _, _ in RANGES:
                c80, n = tally.range_coverage(key + (m,), h, 80, name)
                c95, _ = tally.range_coverage(key + (m,), h, 95, name)
                parts.append(f"{name} {c80:.2f} ({c95:.2f}) [{n}]" if n else f"{name} -")
            spread = tally.person_cov.get(key + (m, h, 80)) or [float("nan")]
            print(f"    {m:10s} {h:>5d} min: all {tally.coverage(key + (m,), h, 80):.2f} "
                  f"({tally.coverage(key + (m,), h, 95):.2f}); " + "; ".join(parts)
                  + f"; per person {min(spread):.2f} / {np.median(spread):.2f} / {max(spread):.2f}")


def costs(prior):
    from mlmodels.core.coldstart import PopulationForecaster as _P  # noqa: F401 - same module, for clarity
    from observations.synthetic import generate_cgm
    from predictions import fastpath

    readings = generate_cgm(14, seed=7, end=pd.Timestamp("2026-03-20 12:00", tz="UTC"), tz="UTC")
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        r2 = train_forecaster(readings, tz="UTC", prior=prior)
        seconds.append(time.perf_counter() - started)
    r1 = train_forecaster(readings, tz="UTC")
    print("\n=== costs ===")
    print(f"release-2 training, 14 synthetic days, one core: median {np.median(seconds):.1f} s "
          f"(runs {', '.join(f'{s:.1f}' for s in seconds)}); release 1 on the same data {r1.timings['total_s']:.1f} s")
    window = fastpath.Readings.from_rows(
        readings["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)[-40:], readings["glucose_mg_dl"].to_numpy()[-40:]
    )
    models = {"release_1": r1.forecaster, "release_2": r2.forecaster, "prior": PopulationForecaster(prior)}
    for horizons, label in (([30, 60, 120], "30/60/120 min"), (list(range(15, 1441, 15)), "24 h")):
        timings = {name: [] for name in models}
        for name, model in models.items():  # warm-up
            fastpath.predict(model, window, as_of_ns=None, horizons=horizons, tz="UTC")
        for _ in range(300):
            for name, model in models.items():
                started = time.perf_counter()
                fastpath.predict(model, window, as_of_ns=None, horizons=horizons, tz="UTC")
                timings[name].append((time.perf_counter() - started) * 1000)
        print(f"warm forecast {label} (fast path, one window, 300 interleaved calls): " + "; ".join(
            f"{name} p50 {np.percentile(t, 50):.2f} ms p95 {np.percentile(t, 95):.2f} ms" for name, t in timings.items()))
        print(f"  release 2 - release 1 at p95: {np.percentile(timings['release_2'], 95) - np.percentile(timings['release_1'], 95):+.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--people", type=int, default=0, help="at most N held-out people per corpus (0 = all)")
    parser.add_argument("--stride", type=int, default=6)
    parser.add_argument("--no-costs", action="store_true")
    parser.add_argument("--only", choices=["unseen", "cold", "costs", "short"], default=None)
    parser.add_argument("--role", choices=["test", "val"], default="test",
                        help="the corpora's held-out people (default) or their validation people, on which "
                             "the settings below were chosen (Broll only with test)")
    parser.add_argument("--far-default", type=float, nargs=2, metavar=("PRIOR", "MEDIAN"),
                        help="try other far weights without evidence (training.FAR_WEIGHT_DEFAULT)")
    parser.add_argument("--band-widen", type=float,
                        help="try another widening of the population bands (coldstart.POPULATION_BAND_WIDEN)")
    args = parser.parse_args()
    if args.far_default:
        training.FAR_WEIGHT_DEFAULT = tuple(args.far_default)
    if args.band_widen:
        global PopulationForecaster
        PopulationForecaster = functools.partial(coldstart.PopulationForecaster, band_widen=args.band_widen)
        training.POPULATION_BAND_WIDEN = args.band_widen  # release 2's bands shrink toward these
    prior = shipped_prior()
    print(f"glucast cold-start bench — prior {prior.version} ({getattr(prior, 'kind', '?')}), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f}")
    people: dict[str, dict[str, pd.DataFrame]] = {}
    for corpus, name in CORPUS_FILES.items():
        everyone = load_corpus(args.data / name)
        roles = split_subjects(corpus, everyone)
        held_out = [s for s in sorted(everyone) if roles[s] == args.role]
        if args.people:
            held_out = held_out[: args.people]
        people[corpus] = {s: everyone[s] for s in held_out}
    if args.role == "test":
        people["broll2021"] = load_broll(args.data)
    tally, counted = Tally(), defaultdict(int)
    started = time.perf_counter()
    if args.only == "costs":
        costs(prior)
        return
    if args.only == "short":
        for corpus, group in people.items():
            for subject, readings in group.items():
                t0, t1 = readings["time"].iloc[0], readings["time"].iloc[-1]
                score_short_history(tally, corpus, readings, t0 + (t1 - t0) * TRAIN_FRACTION, args.stride)
        report_short_history(tally, people)
        return
    if args.only in (None, "unseen"):
        for corpus, group in people.items():
            for subject, readings in group.items():
                t0, t1 = readings["time"].iloc[0], readings["time"].iloc[-1]
                if score_person(tally, "A. unseen people (70% past / 30% future)", corpus, readings,
                                t0 + (t1 - t0) * TRAIN_FRACTION, args.stride, prior):
                    counted[("A. unseen people (70% past / 30% future)", corpus)] += 1
        report(tally, "A. unseen people (70% past / 30% future)", people, counted)
        print(f"\n(scenario A took {time.perf_counter() - started:.0f} s)")
        for corpus, group in people.items():
            for subject, readings in group.items():
                t0, t1 = readings["time"].iloc[0], readings["time"].iloc[-1]
                score_short_history(tally, corpus, readings, t0 + (t1 - t0) * TRAIN_FRACTION, args.stride)
        report_short_history(tally, people)
    if args.only in (None, "cold"):
        for days in (1, 2):
            scenario = f"B. cold start: first {days} day{'s' if days > 1 else ''} known"
            for corpus, group in people.items():
                for subject, readings in group.items():
                    t0, t1 = readings["time"].iloc[0], readings["time"].iloc[-1]
                    if t1 - t0 < pd.Timedelta(days=days, hours=12):
                        continue  # too little after the known days to score
                    if score_person(tally, scenario, corpus, readings, t0 + pd.Timedelta(days=days), args.stride, prior):
                        counted[(scenario, corpus)] += 1
            report(tally, scenario, people, counted)
    if not args.no_costs:
        costs(prior)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
