"""The population prior on people it never saw, beside the simple baselines (per corpus).

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/population.py [--data DIR] [--stride 6] [--quick]
(also called at the end of bench/accuracy.py)

People: the held-out 20% of each training corpus (weinstock2016, colas2019; the fixed split of
mlmodels/core/prior_data.py, never trained or tuned on) and the 5 Broll people (never trained on).

Protocol per person, like the black-box test: the first 70% of the person's time is their past
(the per-person ridge is fitted on it, the time-of-day profile is built from it); from the
remaining 30%, a forecast every 30 minutes (`--stride 6` grid slots; every eligible origin with
a real reading and a complete 2-hour window) from the preceding history only, scored against
the real readings 5..120 minutes and 2..24 hours later.

Columns (all on the same origins):
  persist = no change; AR2 = Nightscout's AR2; ridge = a per-person ridge (the core's
  RidgeForecaster, alpha chosen on the last 20% of the person's past, refitted on all of it);
  "best simple" = the best of these three per corpus and horizon; prior:<candidate> = the
  population model alone (each trained candidate: linear, xgboost, gru fp32, gru int8; the
  shipped one is marked *). MAE is pooled over all origins of a corpus; coverage per horizon,
  per glucose range of the outcome and per person (min / median / max over people). Outcomes at
  the sensor's limits (<= 40 or >= 400 mg/dL, censored readings) count as covered when the band
  reaches that limit.
Far horizons: the shipped prior with the person's profile vs the person's own time-of-day median.
Cold start: the per-person ridge fitted on only the person's first 1 or 2 days (persistence and
AR2 need none), scored on the same origins, beside the prior (which needs no days at all).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlmodels.core.estimators import RidgeForecaster, ar2_path  # noqa: E402
from mlmodels.core.features import HORIZONS, build_features, build_targets, grid_windows  # noqa: E402
from mlmodels.core.population import PRIOR_DIR, PopulationPrior, shipped_prior  # noqa: E402
from mlmodels.core.preparation import SENSOR_HIGH_LIMIT, SENSOR_LOW_LIMIT, prepare_grid  # noqa: E402
from mlmodels.core.prior_data import (  # noqa: E402
    CORPUS_FILES,
    default_data_dir,
    load_broll,
    load_corpus,
    split_subjects,
)
from mlmodels.core.profile import TimeOfDayProfile  # noqa: E402

TRAIN_FRACTION = 0.70
CANDIDATE_DIR = REPO / "var" / "prior-candidates"
CANDIDATES = ("linear", "xgboost", "gru", "gru_int8")
SHORT_REPORT = (30, 60)
FAR_REPORT = (180, 240, 360, 720, 1080, 1440)
COVERAGE_REPORT = (15, 30, 60, 120, 240, 720, 1440)
RANGES = (("<70", 0, 70), ("70-180", 70, 180), (">180", 180, 1e9))


def covered(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Whether each outcome lies inside its band. A reading at the sensor's limit is censored
    ("40 or lower", "400 or higher"; a quarter of Weinstock's readings below 70 are such): it
    counts as covered when the band reaches the limit, since bands are clamped to 40..400 like
    every forecast. Shared by bench/cold_start.py."""
    return ((actual >= lower) | ((actual <= SENSOR_LOW_LIMIT) & (lower <= SENSOR_LOW_LIMIT))) & (
        (actual <= upper) | ((actual >= SENSOR_HIGH_LIMIT) & (upper >= SENSOR_HIGH_LIMIT)))
COLD_START_DAYS = (1, 2)


def person_ridge(grid: pd.DataFrame, cut: pd.Timestamp) -> RidgeForecaster | None:
    past = grid.loc[grid.index < cut]
    X = build_features(past, "UTC").to_numpy()
    Y = build_targets(past, HORIZONS).to_numpy()
    rows = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
    if rows.sum() < 100:
        return None
    idx = np.flatnonzero(rows)
    split = idx[int(len(idx) * 0.8)]
    gap = 24  # 120 minutes between the fit and validation parts
    fit_rows, val_rows = idx[idx < split - gap], idx[idx >= split]
    model = RidgeForecaster()
    if len(fit_rows) >= 50 and len(val_rows) >= 20:
        model.fit(X[fit_rows], Y[fit_rows], X[val_rows], Y[val_rows])
    return RidgeForecaster(alpha=model.alpha or 100.0).fit(X[rows], Y[rows])


def evaluate_person(readings: pd.DataFrame, priors: dict[str, PopulationPrior], stride: int) -> dict | None:
    grid = prepare_grid(readings)
    start, end = grid.index[0], grid.index[-1]
    cut = start + (end - start) * TRAIN_FRACTION
    windows, _, _ = grid_windows(grid)
    values = grid["glucose_mg_dl"].to_numpy()
    observed = grid["observed"].to_numpy()
    times = grid.index.asi8
    eligible = np.flatnonzero((grid.index >= cut) & observed & np.isfinite(windows).all(axis=1))[::stride]
    if len(eligible) == 0:
        return None
    horizons = sorted(set(HORIZONS) | set(FAR_REPORT) | set(COVERAGE_REPORT))
    steps = np.array(horizons) // 5
    idx = eligible[:, None] + steps[None, :]
    inside = idx < len(values)
    idx = np.where(inside, idx, 0)
    actual = np.where(inside & observed[idx], values[idx], np.nan)
    now = values[eligible]
    col = {h: i for i, h in enumerate(horizons)}
    out = {"actual": actual, "horizons": horizons, "now": now, "pred": {}, "bands": {}}
    out["pred"]["persist"] = np.repeat(now[:, None], len(horizons), axis=1)
    short_cols = [col[h] for h in HORIZONS]
    ar2 = np.full_like(actual, np.nan)
    ar2[:, short_cols] = ar2_path(now, windows[eligible, -2], len(HORIZONS))
    out["pred"]["AR2"] = ar2
    ridge = person_ridge(grid, cut)
    rid = np.full_like(actual, np.nan)
    if ridge is not None:
        X = build_features(grid, "UTC").to_numpy()[eligible]
        rid[:, short_cols] = now[:, None] + ridge.predict(X)
    out["pred"]["ridge"] = rid
    # cold start: the same ridge fitted on only the person's first day / two days (when those
    # end before the scored part), scored on the same origins
    for days in COLD_START_DAYS:
        end = start + pd.Timedelta(days=days)
        cold = np.full_like(actual, np.nan)
        model = person_ridge(grid, end) if end <= cut else None
        if model is not None:
            X = build_features(grid, "UTC").to_numpy()[eligible]
            cold[:, short_cols] = now[:, None] + model.predict(X)
        out["pred"][f"ridge {days}d"] = cold
    profile = TimeOfDayProfile().fit(grid.loc[grid.index < cut], "UTC")
    minutes = ((times[eligible] // 60_000_000_000) % 1440).astype(float)
    out["pred"]["ToD median"] = np.column_stack([profile.median_at((minutes + h) % 1440) for h in horizons])
    for name, prior in priors.items():
        fc = prior.forecast(windows[eligible], times[eligible], "UTC", profile=profile)
        pcols = [prior.horizons.index(h) for h in horizons]
        out["pred"][name] = fc["value"][:, pcols]
        out["bands"][name] = {k: fc[k][:, pcols] for k in ("lower_80", "upper_80", "lower_95", "upper_95")}
    return out


def pooled(results: list[dict], name: str, h: int, metric: str) -> float:
    err = []
    for r in results:
        j = r["horizons"].index(h)
        e = r["pred"][name][:, j] - r["actual"][:, j]
        err.append(e[np.isfinite(e)])
    e = np.concatenate(err) if err else np.array([])
    if len(e) == 0:
        return float("nan")
    return float(np.abs(e).mean()) if metric == "mae" else float(np.sqrt((e**2).mean()))


def coverage(results, name, h, tag, rng=None) -> tuple[float, list[float]]:
    inside_all, per_person = [], []
    for r in results:
        j = r["horizons"].index(h)
        a = r["actual"][:, j]
        lo, hi = r["bands"][name][f"lower_{tag}"][:, j], r["bands"][name][f"upper_{tag}"][:, j]
        ok = np.isfinite(a)
        if rng is not None:
            ok &= (a >= rng[1]) & (a < rng[2])
        inside = covered(a[ok], lo[ok], hi[ok])
        inside_all.append(inside)
        if ok.sum() >= 10:
            per_person.append(float(inside.mean()))
    inside = np.concatenate(inside_all) if inside_all else np.array([])
    return (float(inside.mean()) if len(inside) else float("nan")), per_person


def report(label: str, results: list[dict], names: list[str], shipped: str) -> dict:
    n_origins = sum(len(r["now"]) for r in results)
    print(f"\n=== {label}: {len(results)} people, {n_origins} origins (every 30 min of the last 30%) ===")
    base = ["persist", "AR2", "ridge"]
    head = f"{'':<22}" + "".join(f"{f'MAE {h}':>9}{f'RMSE {h}':>9}" for h in SHORT_REPORT) + "   vs best simple (MAE 30/60)"
    print(head)
    table = {}
    for name in base + names:
        row = {h: (pooled(results, name, h, "mae"), pooled(results, name, h, "rmse")) for h in SHORT_REPORT}
        table[name] = row
    best = {h: min(table[b][h][0] for b in base) for h in SHORT_REPORT}
    best_name = {h: min(base, key=lambda b: table[b][h][0]) for h in SHORT_REPORT}
    for name in base + names:
        row = table[name]
        mark = "*" if name == shipped else " "
        ratio = "" if name in base else "   " + " / ".join(f"{row[h][0] / best[h]:.3f}" for h in SHORT_REPORT)
        print(f"{mark}{name:<21}" + "".join(f"{row[h][0]:9.2f}{row[h][1]:9.2f}" for h in SHORT_REPORT) + ratio)
    print(f"best simple baseline: {best_name[30]} at 30 min, {best_name[60]} at 60 min")
    shipped_row = table[shipped]
    for days in COLD_START_DAYS:
        name_d = f"ridge {days}d"
        cold = {h: pooled(results, name_d, h, "mae") for h in SHORT_REPORT}
        if not all(np.isfinite(v) for v in cold.values()):
            print(f"cold start {days} day(s): the person's first {days} day(s) end after the scored part begins; skipped")
            continue
        cold_best = {h: min(cold[h], table["persist"][h][0], table["AR2"][h][0]) for h in SHORT_REPORT}
        print(f"cold start, ridge on the first {days} day(s) only: MAE 30/60 {cold[30]:.2f}/{cold[60]:.2f}; "
              f"best simple then {cold_best[30]:.2f}/{cold_best[60]:.2f}; prior alone vs it "
              + " / ".join(f"{shipped_row[h][0] / cold_best[h]:.3f}" for h in SHORT_REPORT))
    name = shipped
    print(f"bands of the shipped prior ({name}) with the person's profile for far horizons — coverage 80% / 95%:")
    print(f"  {'horizon':>8} {'all':>12} {'<70':>12} {'70-180':>12} {'>180':>12}   per person 80% (min/median/max, n)")
    cov = {}
    for h in COVERAGE_REPORT:
        c80, pp = coverage(results, name, h, "80")
        c95, _ = coverage(results, name, h, "95")
        parts = []
        for rng in RANGES:
            r80, _ = coverage(results, name, h, "80", rng)
            r95, _ = coverage(results, name, h, "95", rng)
            parts.append(f"{r80:5.2f}/{r95:5.2f}" if np.isfinite(r80) else f"{'-':>11}")
        spread = f"{min(pp):.2f}/{np.median(pp):.2f}/{max(pp):.2f}, {len(pp)}" if pp else "-"
        if np.isfinite(c80):
            print(f"  {h:>8} {c80:5.2f}/{c95:5.2f}  " + " ".join(f"{p:>12}" for p in parts) + f"   {spread}")
        cov[h] = (c80, c95)
    far_rows = []
    for h in FAR_REPORT:
        prior_mae = pooled(results, name, h, "mae")
        med = pooled(results, "ToD median", h, "mae")
        if np.isfinite(med):
            far_rows.append(f"{h // 60}h {prior_mae:.1f} vs {med:.1f} ({prior_mae / med - 1:+.1%})")
    if far_rows:
        print("far horizons, MAE prior+profile vs the person's time-of-day median: " + "; ".join(far_rows))
    return {"table": table, "best": best, "coverage": cov}


def latency(priors: dict[str, PopulationPrior]) -> None:
    rng = np.random.default_rng(0)
    window = (120 + np.cumsum(rng.normal(0, 2, 25)))[None, :]
    t = np.array([pd.Timestamp("2026-03-02 07:00", tz="UTC").value])
    print("\nsingle-window latency (median of 2000 calls, one thread), short + far horizons:")
    for name, prior in priors.items():
        for what, fn in (("predict", prior.predict), ("forecast+bands", prior.forecast)):
            for _ in range(50):
                fn(window, t, "Europe/Berlin")
            samples = []
            for _ in range(2000):
                t0 = time.perf_counter()
                fn(window, t, "Europe/Berlin")
                samples.append(time.perf_counter() - t0)
            print(f"  {name:<10} {what:<15} median {np.median(samples) * 1e6:7.0f} us, p95 {np.percentile(samples, 95) * 1e6:7.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--stride", type=int, default=6, help="grid slots between origins (6 = 30 min)")
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    shipped = shipped_prior()
    priors: dict[str, PopulationPrior] = {}
    shipped_name = f"prior:{shipped.metadata['training'].get('chosen', 'shipped')}"
    for name in CANDIDATES:
        path = CANDIDATE_DIR / name
        if path.is_dir():
            priors[f"prior:{name}"] = PopulationPrior.from_directory(path)
    if not priors:
        print(f"(no candidate artifacts in {CANDIDATE_DIR}; run python -m mlmodels.core.prior_training to compare "
              "them — showing the shipped prior only)")
    priors[shipped_name] = shipped
    print(f"population prior bench — shipped {shipped.version} ({shipped.kind}, files in "
          f"{PRIOR_DIR.relative_to(REPO)}/, {sum(p.stat().st_size for p in PRIOR_DIR.iterdir()) / 1024:.0f} KiB); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    started = time.perf_counter()
    sets = {}
    for corpus, fname in CORPUS_FILES.items():
        path = args.data / fname
        if not path.exists():
            print(f"{path} not found; skipping {corpus}")
            continue
        people = load_corpus(path)
        roles = split_subjects(corpus, people)
        sets[f"{corpus} held-out people"] = {s: r for s, r in people.items() if roles[s] == "test"}
    if (args.data / "broll2021_cgm.csv").exists():
        sets["broll2021 (never trained on)"] = load_broll(args.data)
    names = list(priors)
    summary = {}
    for label, people in sets.items():
        results = [r for r in (evaluate_person(p, priors, args.stride) for p in people.values()) if r is not None]
        summary[label] = report(label, results, names, shipped_name)
    print(f"\nscoring time {time.perf_counter() - started:.0f}s")
    if not args.no_latency:
        latency({k: v for k, v in priors.items()})


if __name__ == "__main__":
    main()
