"""Train one person's forecaster from their readings (numeric core, no Django).

Time order is sacred: every split is temporal, never shuffled, with a gap of 120 minutes (the
longest short horizon) between parts, so no target of an earlier part overlaps a later one.

    | fit | gap | validation | gap | calibration | gap | test |

- fit: candidates are fitted;
- validation: ridge alpha, XGBoost rounds (early stopping) and depth, damped-trend phi, blend
  weights, and the difficulty model of the conformal bands are chosen;
- calibration: candidates refitted on fit+validation predict it; conformal quantiles come from
  those errors;
- test (the last part): never used for any choice; metrics for the model, the AR2 baseline and
  persistence are computed on it, so every model records how much better than baseline it is.

Release 2 (trained when the population prior is given, `prior=`): the features carry the prior's
forecast (mlmodels/core/schemas.py), the prior itself is a blend candidate, ridge sees its
forecasts as inputs and XGBoost learns the person's correction to it; the blend weights, chosen on
the person's own out-of-sample days, decide how much of the prior each horizon keeps. Because the
prior needs no training, release 2 trains from 1 day of readings (release 1: 3 days), and it
replaces the four-way split by rolling-origin validation that reuses days:

    | fold 1 train ... | chunk 1 | chunk 2 | validation | gap | test |   (fractions of the data
                                                                           before the test part)

- test: the last 20%, untouched as before;
- the rest: candidates are tuned on (everything before the validation part, validation); the
  two earlier chunks are each predicted by the tuned candidates refitted on everything before
  them; all three out-of-sample parts together choose blend weights and calibrate the bands;
- the evaluated model is refitted on everything before the test part (not only half of it).

Finally (refit_on_all, default) the chosen candidates are refitted with the chosen
hyperparameters on all the data, so the served model knows the person's most recent days. The
metrics stay those of the pre-refit model on the untouched test part (`evaluated_forecaster`);
the refitted model has seen the test period, so compare models with `result.metrics`, not by
re-scoring `result.forecaster` on its own test period.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlmodels.core.coldstart import POPULATION_BAND_WIDEN, PopulationForecaster
from mlmodels.core.conformal import DRIFT_MISCOVERAGE_FACTOR, RANGE_BY, ConformalIntervals
from mlmodels.core.estimators import (
    AR2Forecaster,
    BlendForecaster,
    Candidate,
    DampedTrendForecaster,
    PersistenceForecaster,
    PlainRidgeForecaster,
    PriorForecaster,
    RidgeForecaster,
    RidgeOnAR2Forecaster,
    RidgeOnPriorForecaster,
    RidgeTreatmentsForecaster,
    XGBoostForecaster,
    XGBoostTreatmentsForecaster,
    default_features,
)
from mlmodels.core.evaluation import DEPLOY_HORIZONS, decide, horizon_metrics, improvement, metric_value, summarise
from mlmodels.core.features import (
    HORIZONS,
    MAX_SHORT_HORIZON,
    build_targets,
    feature_names,
)
from mlmodels.core.forecaster import FAR_BLEND_KNOTS, BaselineForecaster, GlucoseForecaster, jsonable
from mlmodels.core.schemas import RELEASE_2, RELEASE_3, FeatureBuilder, Release2Features, training_builder
from mlmodels.core.preparation import STEP_MIN, data_sufficiency, prepare_grid
from mlmodels.core.profile import TimeOfDayProfile

MIN_SPAN_DAYS = 3.0
# With the population prior to start from, a day of readings is enough for an adapted model.
MIN_SPAN_DAYS_WITH_PRIOR = 1.0
MIN_COVERAGE = 0.70
READINGS_PER_DAY = 1440 // STEP_MIN
SPLIT_GAP = pd.Timedelta(minutes=MAX_SHORT_HORIZON)
SPLIT_FRACTIONS = {"fit": 0.50, "val": 0.15, "cal": 0.15, "test": 0.20}
# Extra rolling-origin folds inside the fit part (start, end as fractions of usable rows): each
# trains on everything before its start (minus the gap) and predicts its chunk. With the main
# validation part they give blend weights and band shapes seen on several different days.
ROLLING_FOLDS = ((0.20, 0.30), (0.30, 0.40), (0.40, 0.50))
BLEND_PRIOR_ROWS = 100.0
CALIBRATE_WITH_FOLDS = True
NORMALIZED_CONFORMAL = True
LONG_EVAL_HORIZONS = [180, 240, 360, 720, 1440]
FAR_WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# Calibration rows worth as much as the prior's band widths (see _shrink_bands_toward_prior).
BAND_PRIOR_ROWS = 300.0
# Fewer validation origins than this with an outcome at a far horizon: no choice, FAR_WEIGHT_DEFAULT.
FAR_WEIGHT_MIN_ROWS = 30
# (prior, profile median) weights at a far knot without FAR_WEIGHT_MIN_ROWS outcomes to choose on
# (a new person's first days): the prior's far forecast made with the person's profile, which was
# trained across people to beat that median. A third each (before) was worse on the corpora's
# validation people after 1 and 2 known days: Weinstock MAE at 4 / 12 / 24 h 61.5 / 71.4 / 65.5
# vs 59.9 / 70.4 / 65.2 (1 day), at 12 / 24 h 66.8 / 65.9 vs 65.3 / 63.5 (2 days); Colas the same
# (bench/cold_start.py --role val --only cold [--far-default 0.333 0.333]).
FAR_WEIGHT_DEFAULT = (1.0, 0.0)
FAR_WEIGHT_MAX_ROWS = 800
DEFAULT_CANDIDATES = ("persistence", "ar2", "damped_trend", "ridge", "xgboost")
RELEASE_2_CANDIDATES = ("persistence", "ar2", "damped_trend", "prior", "ridge", "plain_ridge", "xgboost")
# The plain ridge is a blend candidate (above) because release 2 was the prior for steady people:
# at 60 min the blend kept 0.93-1.00 of the prior on Colas validation people (the rolling folds
# fit the ridge on 40-64% of the days, so it looked worse there than refitted, and the weights
# shrink toward the prior), so where the prior is a little off for someone nothing fell back to
# their own regression (docs/bands.md, section 1).
# A hard per-horizon choice, on the person's test part, between the blend and each of these
# alone (the deploy rule one horizon at a time) is implemented but OFF: measured on all held-out
# people (bench/simple_floor.py) it was worse than the blend it replaced (Colas 0.945x the ridge at
# 60 min and 1.006x at 2 h against 0.912x / 0.921x; Broll 0.981x against 0.954x at 60 min): a
# minimum over four candidates on a test part of a few hundred origins picks noise. () = off.
# Release 3 keeps every release-2 candidate (glucose only) and adds the same two learners with the
# recorded treatments as inputs; the blend, chosen on the person's own out-of-sample days, decides
# per person and horizon how much the treatments earn.
RELEASE_3_CANDIDATES = RELEASE_2_CANDIDATES + ("ridge_treatments", "xgboost_treatments")
PER_HORIZON_ALTERNATIVES: tuple[str, ...] = ()
# Release 2's bands are Mondrian per glucose range (conformal.py); release 1's stay pooled.
RELEASE_2_RANGE_BY = RANGE_BY
RELEASE_2_BLEND_TARGET = "prior"
RELEASE_2_BLEND_PRIOR_ROWS = BLEND_PRIOR_ROWS
# Release 2's rolling-origin split (fractions of the usable rows before the test part).
ROLLING_TEST_FRACTION = 0.20
ROLLING_CHUNKS = ((0.40, 0.60), (0.60, 0.80))
ROLLING_VAL_START = 0.80
# Fewest rows per part (fit, validation/fold chunk, test) below which training is refused.
MIN_ROWS = {1: {"fit": 200, "chunk": 50, "test": 50}, 2: {"fit": 100, "chunk": 30, "test": 36}}
XGB_GRID = (
    {"max_depth": 3, "min_child_weight": 10.0},
    {"max_depth": 5, "min_child_weight": 20.0},
)


class InsufficientData(ValueError):
    """Too little data to train; `reason` is 'insufficient_data', `figures` the measured numbers."""

    reason = "insufficient_data"

    def __init__(self, message: str, figures: dict):
        super().__init__(message)
        self.figures = figures


@dataclass
class TrainingResult:
    forecaster: GlucoseForecaster
    algorithm: str
    hyperparameters: dict
    feature_schema: dict
    metrics: dict
    data_start: pd.Timestamp
    data_end: pd.Timestamp
    n_readings: int
    log: list[str]
    test_period: tuple[pd.Timestamp, pd.Timestamp]
    evaluated_forecaster: GlucoseForecaster | None = None
    timings: dict = field(default_factory=dict)


class _Log:
    def __init__(self):
        self.start = time.perf_counter()
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(f"[{time.perf_counter() - self.start:7.2f}s] {message}")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def check_sufficiency(grid: pd.DataFrame, min_span_days: float = MIN_SPAN_DAYS) -> dict:
    """Raise InsufficientData below `min_span_days` of span or 70% of those days' expected readings."""
    figures = data_sufficiency(grid)
    figures["min_span_days"] = min_span_days
    figures["min_readings"] = int(np.ceil(MIN_COVERAGE * min_span_days * READINGS_PER_DAY))
    if figures["span_days"] < min_span_days or figures["n_observed"] < figures["min_readings"]:
        raise InsufficientData(
            f"training needs at least {min_span_days:g} days of readings with at least "
            f"{figures['min_readings']} readings ({MIN_COVERAGE:.0%} of those days); got "
            f"{figures['span_days']:.2f} days and {figures['n_observed']} readings",
            figures,
        )
    return figures


def temporal_split(times: pd.DatetimeIndex, usable: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over grid rows for fit/val/cal/test, by counts of usable rows, with gaps."""
    usable_times = times[usable]
    n = len(usable_times)

    def at(fraction: float) -> pd.Timestamp:
        return usable_times[min(int(n * fraction), n - 1)]

    cuts = np.cumsum([SPLIT_FRACTIONS[k] for k in ("fit", "val", "cal")])
    bounds = [at(c) for c in cuts]
    b1, b2, b3 = bounds
    folds = []
    for lo, hi in ROLLING_FOLDS:
        start, end = at(lo), at(hi)
        folds.append((usable & (times < start - SPLIT_GAP), usable & (times >= start) & (times < end - SPLIT_GAP)))
    return {
        "folds": folds,
        "fit": usable & (times < b1 - SPLIT_GAP),
        "val": usable & (times >= b1) & (times < b2 - SPLIT_GAP),
        "cal": usable & (times >= b2) & (times < b3 - SPLIT_GAP),
        "test": usable & (times >= b3),
        "fit_val": usable & (times < b2 - SPLIT_GAP),
        "before_test": usable & (times < b3 - SPLIT_GAP),
        "bounds": np.array([b.value for b in bounds]),
    }


def rolling_split(times: pd.DatetimeIndex, usable: np.ndarray) -> dict[str, np.ndarray]:
    """Release 2's split (module docstring): untouched test part, rolling-origin folds before it.

    Same keys as temporal_split; `cal` is empty (the bands are calibrated on the pooled
    out-of-sample folds) and `fit_val` is everything before the test part.
    """
    usable_times = times[usable]
    test_start = usable_times[min(int(len(usable_times) * (1 - ROLLING_TEST_FRACTION)), len(usable_times) - 1)]
    before = usable & (times < test_start - SPLIT_GAP)
    before_times = times[before]
    m = len(before_times)

    def at(fraction: float) -> pd.Timestamp:
        return before_times[min(int(m * fraction), m - 1)] if m else test_start

    folds = [
        (before & (times < at(lo) - SPLIT_GAP), before & (times >= at(lo)) & (times < at(hi) - SPLIT_GAP))
        for lo, hi in ROLLING_CHUNKS
    ]
    val_start = at(ROLLING_VAL_START)
    return {
        "folds": folds,
        "fit": before & (times < val_start - SPLIT_GAP),
        "val": before & (times >= val_start),
        "cal": np.zeros(len(times), dtype=bool),
        "test": usable & (times >= test_start),
        "fit_val": before,
        "before_test": before,
        "bounds": np.array([val_start.value, test_start.value, test_start.value]),
    }


def _mae(pred: np.ndarray, Y: np.ndarray) -> float:
    return float(np.nanmean(np.abs(pred - Y)))


def _smooth_weights(weights: np.ndarray) -> np.ndarray:
    """Average blend weights with neighbouring horizons: adjacent horizons need similar blends,
    and the smoothing damps noise from a short validation fold."""
    padded = np.vstack([weights[:1], weights, weights[-1:]])
    smooth = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return smooth / smooth.sum(axis=1, keepdims=True)


def _make_candidates(names, random_state: int, release: int = 1) -> list[Candidate]:
    made = []
    for name in names:
        if name == "persistence":
            made.append(PersistenceForecaster())
        elif name == "ar2":
            made.append(AR2Forecaster())
        elif name == "damped_trend":
            made.append(DampedTrendForecaster())
        elif name == "ridge":
            made.append(RidgeForecaster(features=default_features("ridge", release)))
        elif name == "plain_ridge":
            made.append(PlainRidgeForecaster())
        elif name == "prior":
            made.append(PriorForecaster())
        elif name == "ridge_ar2":
            made.append(RidgeOnAR2Forecaster())
        elif name == "ridge_prior":
            made.append(RidgeOnPriorForecaster(features=default_features("ridge", release)))
        elif name == "xgboost":
            made.append(XGBoostForecaster(random_state=random_state, **_xgb_release_params(release)))
        elif name == "ridge_treatments":
            made.append(RidgeTreatmentsForecaster())
        elif name == "xgboost_treatments":
            made.append(XGBoostTreatmentsForecaster(random_state=random_state))
        else:
            raise ValueError(f"unknown candidate {name!r}")
    return made


def _refit(cand: Candidate, X: np.ndarray, Y: np.ndarray, random_state: int) -> Candidate:
    """A fresh copy of a tuned candidate fitted on (X, Y) with its chosen hyperparameters."""
    if isinstance(cand, RidgeForecaster):
        return type(cand)(alpha=cand.alpha, features=cand.features).fit(X, Y)
    if isinstance(cand, XGBoostForecaster):
        fresh = type(cand)(
            max_depth=cand.max_depth,
            min_child_weight=cand.min_child_weight,
            learning_rate=cand.learning_rate,
            reg_lambda=cand.reg_lambda,
            subsample=cand.subsample,
            colsample_bytree=cand.colsample_bytree,
            fit_horizons=cand.fit_horizons,
            features=cand.features,
            base=cand.base,
            random_state=random_state,
        )
        # More data supports a few more rounds than early stopping found on the smaller fit part.
        rounds = {h: max(10, int(round(r * 1.1))) for h, r in cand.best_rounds.items()}
        return fresh.fit(X, Y, rounds=rounds)
    if isinstance(cand, DampedTrendForecaster):
        return DampedTrendForecaster(phi=cand.phi)
    return cand


def _xgb_release_params(release: int) -> dict:
    """Release 2's trees see the prior's forecasts and learn the person's correction to them."""
    if release >= RELEASE_2:
        return {"features": default_features("xgboost", release), "base": "prior"}
    return {}


def _tune_xgboost(
    Xf, Yf, Xv, Yv, log: _Log, budget_end: float, random_state: int, release: int = 1, kind=XGBoostForecaster
) -> XGBoostForecaster:
    best = None
    extra = _xgb_release_params(release) if kind is XGBoostForecaster else {}
    for i, params in enumerate(XGB_GRID):
        if i > 0 and log.elapsed() > budget_end:
            log(f"{kind.name}: time budget reached, skipping grid point {params}")
            break
        started = time.perf_counter()
        model = kind(random_state=random_state, **params, **extra).fit(Xf, Yf, Xv, Yv)
        score = _mae(model.predict(Xv), Yv)
        log(
            f"{kind.name} {params}: val MAE (all horizons) {score:.2f} mg/dL, rounds {model.best_rounds}, "
            f"{time.perf_counter() - started:.2f}s"
        )
        if best is None or score < best[0]:
            best = (score, model)
    return best[1]


def _evaluate_rows(
    forecaster: GlucoseForecaster,
    X: np.ndarray,
    times_ns: np.ndarray,
    targets_abs: dict[int, np.ndarray],
    tz: str,
) -> dict:
    """Per-horizon metrics of `forecaster` plus AR2 baseline and persistence on the same rows."""
    horizons = sorted(targets_abs)
    now = X[:, feature_names().index("glucose_now")]
    per = {"model": {}, "baseline_ar2": {}, "persistence": {}}
    if len(X) == 0:
        return per
    model_out = forecaster.forecast_matrix(X, times_ns, horizons, tz)
    base_out = BaselineForecaster(tz=tz).forecast_matrix(X, times_ns, horizons, tz)
    for c, h in enumerate(horizons):
        actual = targets_abs[h]
        for key, out in (("model", model_out), ("baseline_ar2", base_out)):
            bands = {k: out[k][:, c] for k in ("lower_80", "upper_80", "lower_95", "upper_95")}
            per[key][str(h)] = horizon_metrics(actual, out["value"][:, c], bands)
        per["persistence"][str(h)] = horizon_metrics(actual, now)
    return per


def _metrics_dict(per: dict, start: pd.Timestamp, end: pd.Timestamp, n_origins: int) -> dict:
    summary = {key: summarise(values) for key, values in per.items()}
    model, ar2, persist = summary.get("model", {}), summary.get("baseline_ar2", {}), summary.get("persistence", {})
    summary["improvement"] = {
        "mae_60_vs_persistence": improvement(model.get("mae_60"), persist.get("mae_60")),
        "mae_60_vs_ar2": improvement(model.get("mae_60"), ar2.get("mae_60")),
        "mae_30_vs_persistence": improvement(model.get("mae_30"), persist.get("mae_30")),
        "mae_30_vs_ar2": improvement(model.get("mae_30"), ar2.get("mae_30")),
        "mae_mean_5_60_vs_ar2": improvement(model.get("mae_mean_5_60"), ar2.get("mae_mean_5_60")),
    }
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "n_origins": int(n_origins),
        "per_horizon": per,
        "summary": summary,
    }


def _origin_rows(grid: pd.DataFrame, X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows usable as forecast origins: complete features and a real (not interpolated) reading."""
    return mask & np.isfinite(X).all(axis=1) & grid["observed"].to_numpy(dtype=bool)


def _absolute_targets(grid: pd.DataFrame, rows: np.ndarray, horizons: list[int]) -> dict[int, np.ndarray]:
    targets = build_targets(grid, horizons, observed_only=True)
    now = grid["glucose_mg_dl"].to_numpy(dtype=float)[rows]
    return {h: now + targets[f"h{h}"].to_numpy()[rows] for h in horizons}


def evaluate_on(
    forecaster: GlucoseForecaster,
    readings: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    tz: str | None = None,
    horizons: list[int] | None = None,
) -> dict:
    """Score `forecaster` with a forecast at every real reading in [start, end] (JSON-able dict).

    Readings before `start` are used as inputs only; outcomes are real readings up to 120 minutes
    (and the long horizons) after each origin. Compare two models by calling this for each with
    the same readings and period; AR2 and persistence are scored on the same rows for reference.
    """
    tz = tz or forecaster.tz
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    grid = prepare_grid(readings)
    horizons = horizons or (HORIZONS + LONG_EVAL_HORIZONS if forecaster.profile is not None else HORIZONS)
    if grid.empty:
        return _metrics_dict({"model": {}, "baseline_ar2": {}, "persistence": {}}, start, end, 0)
    X = forecaster.features.build_grid(grid, tz).to_numpy()
    times = grid.index
    rows = _origin_rows(grid, X, np.asarray((times >= start) & (times <= end)))
    targets = _absolute_targets(grid, rows, horizons)
    per = _evaluate_rows(forecaster, X[rows], times.asi8[rows], targets, tz)
    return _metrics_dict(per, start, end, int(rows.sum()))


def train_forecaster(
    readings: pd.DataFrame,
    *,
    tz: str = "UTC",
    time_budget_s: float = 15.0,
    random_state: int = 0,
    candidates: tuple[str, ...] | None = None,
    refit_on_all: bool = True,
    drift_factor: float = DRIFT_MISCOVERAGE_FACTOR,
    prior=None,
    treatments=None,
) -> TrainingResult:
    """Train, select, calibrate and test a forecaster for one person (see module docstring).

    `prior`: the population prior (mlmodels.core.population); with it the model is release 2,
    starts from the prior and needs 1 day of data instead of 3. `candidates` restricts the blend
    (e.g. ("ridge",) for a plain ridge); `drift_factor` scales the conformal miscoverage (1.0 =
    plain split conformal, see conformal.py). `treatments` (with `prior`): the person's recorded
    treatments (mlmodels.core.treatments.Treatments); the model is then release 3, whose
    candidates see them (each origin only those at or before it) beside the glucose-only ones.
    """
    log = _Log()
    timings: dict[str, float] = {}
    builder: FeatureBuilder = training_builder(prior, treatments)
    release = builder.version
    if candidates is None:
        candidates = (RELEASE_3_CANDIDATES if release >= RELEASE_3
                      else RELEASE_2_CANDIDATES if release >= RELEASE_2 else DEFAULT_CANDIDATES)
    minimum = MIN_ROWS[min(release, RELEASE_2)]
    grid = prepare_grid(readings)
    if release >= RELEASE_3 and treatments.latest_ns() is None and candidates == RELEASE_3_CANDIDATES:
        # Nothing recorded (no insulin, basal or carbs): treatment candidates would see only
        # zeros. Release 3 then trains release 2's candidates, and forecasts as release 2 would.
        candidates = RELEASE_2_CANDIDATES
    figures = check_sufficiency(grid, MIN_SPAN_DAYS_WITH_PRIOR if release >= RELEASE_2 else MIN_SPAN_DAYS)
    log(
        f"data: {figures['n_observed']} readings over {figures['span_days']:.2f} days "
        f"({figures['coverage']:.0%} of expected), grid {len(grid)} slots, tz {tz}; release {release}"
        + (f" on population prior {prior.version}" if prior is not None else "")
        + (f"; recorded treatments: {len(treatments.insulin_ns)} insulin, {len(treatments.basal_ns)} basal, "
           f"{len(treatments.carbs_ns)} meals" if release >= RELEASE_3 else "")
    )
    t0 = time.perf_counter()
    X_all = builder.build_grid(grid, tz).to_numpy()
    timings["features_s"] = round(time.perf_counter() - t0, 3)
    Y_all = build_targets(grid, HORIZONS).to_numpy()
    times = grid.index
    usable = np.isfinite(X_all).all(axis=1) & np.isfinite(Y_all[:, 0])
    split = rolling_split(times, usable) if release >= RELEASE_2 else temporal_split(times, usable)
    counts = {k: int(split[k].sum()) for k in ("fit", "val", "cal", "test")}
    log(f"{'rolling-origin' if release >= RELEASE_2 else 'temporal'} split (rows, gap {SPLIT_GAP}): {counts}")
    needs_cal = release < RELEASE_2
    if (
        counts["fit"] < minimum["fit"]
        or counts["val"] < minimum["chunk"]
        or (needs_cal and counts["cal"] < minimum["chunk"])
        or counts["test"] < minimum["test"]
    ):
        raise InsufficientData(
            "too few complete 2-hour windows to fit, validate, calibrate and test a model "
            f"(rows per part: {counts})",
            {**figures, "rows_per_part": counts},
        )
    Xf, Yf = X_all[split["fit"]], Y_all[split["fit"]]
    Xv, Yv = X_all[split["val"]], Y_all[split["val"]]
    budget_xgb_grid = 0.3 * time_budget_s

    # 1. fit candidates on the fit part, choose their hyperparameters on validation
    t0 = time.perf_counter()
    fitted: list[Candidate] = []
    for cand in _make_candidates(candidates, random_state, release):
        if isinstance(cand, XGBoostForecaster):
            cand = _tune_xgboost(Xf, Yf, Xv, Yv, log, budget_xgb_grid, random_state, release, type(cand))
        else:
            cand.fit(Xf, Yf, Xv, Yv)
        fitted.append(cand)
        log(
            f"{cand.name}: val MAE 30/60 min {_mae(cand.predict(Xv)[:, 5], Yv[:, 5]):.2f}/"
            f"{_mae(cand.predict(Xv)[:, 11], Yv[:, 11]):.2f} mg/dL, params {_short(cand.params())}"
        )
    timings["fit_candidates_s"] = round(time.perf_counter() - t0, 3)

    # 2. rolling origin: the tuned candidates refitted on earlier folds predict the next chunk
    stacked_X, stacked_Y, stacked_T = [Xv], [Yv], [times.asi8[split["val"]]]
    stacked_preds = [[c.predict(Xv)] for c in fitted]
    for train_mask, chunk_mask in split["folds"]:
        if train_mask.sum() < minimum["fit"] or chunk_mask.sum() < minimum["chunk"]:
            continue
        if log.elapsed() > 0.7 * time_budget_s:
            log("rolling origin: time budget reached, fewer folds used")
            break
        Xt, Yt = X_all[train_mask], Y_all[train_mask]
        Xk = X_all[chunk_mask]
        for i, cand in enumerate(fitted):
            stacked_preds[i].append(_refit(cand, Xt, Yt, random_state).predict(Xk))
        stacked_X.append(Xk)
        stacked_Y.append(Y_all[chunk_mask])
        stacked_T.append(times.asi8[chunk_mask])
    Xs, Ys = np.vstack(stacked_X), np.vstack(stacked_Y)
    preds = [np.vstack(p) for p in stacked_preds]
    log(f"rolling origin: {len(stacked_X)} validation folds, {len(Xs)} out-of-sample rows")
    for cand, pred in zip(fitted, preds):
        log(f"  {cand.name}: out-of-sample MAE 30/60 min {_mae(pred[:, 5], Ys[:, 5]):.2f}/{_mae(pred[:, 11], Ys[:, 11]):.2f}")

    # 3. blend weights per horizon from all out-of-sample predictions, shrunk toward equal weights
    names = [c.name for c in fitted]
    target = None
    if release >= RELEASE_2 and "prior" in names and RELEASE_2_BLEND_TARGET == "prior":
        # Release 2 starts from the prior: with few out-of-sample rows the blend stays near it,
        # and the person's own data has to earn every other candidate's weight.
        target = np.array([1.0 if n == "prior" else 0.0 for n in names])
    prior_rows = RELEASE_2_BLEND_PRIOR_ROWS if release >= RELEASE_2 else BLEND_PRIOR_ROWS
    blend = BlendForecaster(fitted).fit_weights(preds, Ys, prior_rows=prior_rows, target=target)
    blend.weights = _smooth_weights(blend.weights)
    used = blend.weights.max(axis=0) > 0.02
    kept = [c for c, u in zip(fitted, used) if u]
    weights = blend.weights[:, used]
    weights /= weights.sum(axis=1, keepdims=True)
    log(
        "blend weights at 30/60/120 min: "
        + "; ".join(
            f"{h} min " + ", ".join(f"{c.name} {weights[HORIZONS.index(h), i]:.2f}" for i, c in enumerate(kept))
            for h in (30, 60, 120)
        )
    )
    kept_preds = [q for q, u in zip(preds, used) if u]
    stacked_T_all = np.concatenate(stacked_T)
    X_fv, Y_fv = X_all[split["fit_val"]], Y_all[split["fit_val"]]
    Xc, Yc = X_all[split["cal"]], Y_all[split["cal"]]
    before_test = grid.loc[times < pd.Timestamp(int(split["bounds"][2]), tz="UTC")]
    profile_eval = TimeOfDayProfile().fit(before_test, tz)
    # Same origin rule as evaluate_on, so both give identical numbers for the same period.
    test_rows = _origin_rows(grid, X_all, np.asarray(times >= pd.Timestamp(int(split["bounds"][2]), tz="UTC")))
    eval_h = HORIZONS + LONG_EVAL_HORIZONS
    targets = _absolute_targets(grid, test_rows, eval_h)
    test_start, test_end = times[test_rows][0], times[-1]

    def assemble(kept, weights, kept_preds):
        """Steps 3b-5 for one choice of candidates and weights: bands, the evaluated model
        (refitted on everything before the test part), far weights, test metrics."""
        stacked_blend = sum(p * weights[:, i][None, :] for i, p in enumerate(kept_preds))
        oos_residual = Ys - stacked_blend
        conformal = ConformalIntervals(
            normalized=NORMALIZED_CONFORMAL, drift_factor=drift_factor,
            range_by=RELEASE_2_RANGE_BY if release >= RELEASE_2 else None,
        ).fit_difficulty(Xs, oos_residual)
        # 4. refit on fit+validation, calibrate the bands on the calibration part
        t0 = time.perf_counter()
        refit_fv = [_refit(c, X_fv, Y_fv, random_state) for c in kept]
        model_fv = BlendForecaster(refit_fv, weights)
        residual_cal = Yc - model_fv.predict(Xc) if len(Xc) else np.empty((0, len(HORIZONS)))
        if release >= RELEASE_2:
            # No calibration part: the pooled out-of-sample folds (models that saw less data than
            # the served one, so this errs on the wide side) calibrate the bands.
            conformal.calibrate(Xs, oos_residual, predicted_change=stacked_blend)
            _shrink_bands_toward_prior(conformal, prior, Xs, stacked_T_all, tz, log)
        elif CALIBRATE_WITH_FOLDS:
            # Errors from several different days make the quantiles less hostage to one calm or
            # hectic calibration day (the fold models saw less data, so this errs on the wide side).
            conformal.calibrate(np.vstack([Xc, Xs]), np.vstack([residual_cal, oos_residual]))
        else:
            conformal.calibrate(Xc, residual_cal)
        log(
            f"conformal: {conformal.n_calibration} calibration rows; 60-min 80% band "
            f"[{conformal.quantiles['lower_80'][11]:+.2f}, {conformal.quantiles['upper_80'][11]:+.2f}] x difficulty"
        )
        timings["refit_calibrate_s"] = round(time.perf_counter() - t0, 3)

        # Release 2's blend is "adapted": it starts from the population prior. The prior alone
        # in a person's model still carries their bands and far horizons: "prior_with_profile".
        algorithm = ("adapted_blend" if release >= RELEASE_2 else "blend") if len(kept) > 1 else kept[0].name
        if algorithm == "prior":
            algorithm = "prior_with_profile"
        hyper = jsonable({
            "candidates": [c.name for c in kept],
            "candidate_params": {c.name: c.params() for c in kept},
            "blend_weights": {str(h): [round(float(w), 4) for w in weights[j]] for j, h in enumerate(HORIZONS)},
            "release": release,
            "split": (
                {"kind": "rolling_origin", "test": ROLLING_TEST_FRACTION, "chunks": ROLLING_CHUNKS,
                 "val_start": ROLLING_VAL_START}
                if release >= RELEASE_2 else {"kind": "four_way", "fractions": SPLIT_FRACTIONS}
            ),
            "split_fractions": SPLIT_FRACTIONS if release < RELEASE_2 else None,
            "split_gap_min": int(SPLIT_GAP / pd.Timedelta(minutes=1)),
            "conformal": "normalised split conformal, per horizon, 80% and 95%",
            "conformal_drift_factor": drift_factor,
            "refit_on_all": refit_on_all,
            "random_state": random_state,
        })
        evaluated = GlucoseForecaster(
            model_fv, conformal, profile_eval, algorithm=algorithm, hyperparameters=hyper, features=builder, tz=tz
        )
        if release >= RELEASE_2 and any(h > MAX_SHORT_HORIZON for h in getattr(prior, "horizons", [])):
            evaluated.far_weights = _choose_far_weights(evaluated, grid, X_all, split, tz, log)
            hyper["far_weights"] = {str(h): [round(w, 4) for w in ws] for h, ws in evaluated.far_weights.items()}

        # 5. the untouched test part: model vs AR2 baseline vs persistence
        t0 = time.perf_counter()
        per = _evaluate_rows(evaluated, X_all[test_rows], times.asi8[test_rows], targets, tz)
        metrics = _metrics_dict(per, test_start, test_end, int(test_rows.sum()))
        timings["test_s"] = round(time.perf_counter() - t0, 3)
        return evaluated, conformal, algorithm, hyper, metrics

    evaluated, conformal, algorithm, hyper, metrics = assemble(kept, weights, kept_preds)
    alternatives = [n for n in PER_HORIZON_ALTERNATIVES if n in names]
    if release >= RELEASE_2 and alternatives:
        # The person's own candidates must earn their place on the untouched test part too, per
        # horizon: where the blend does not beat the prior alone, their plain ridge alone or
        # persistence (the deploy rule at that horizon), that one serves the horizon. The model
        # stays personal where the simple one is not: its bands (calibrated on the person's own
        # out-of-sample errors of what serves) and its far horizons (their time-of-day profile).
        # All horizons to the prior: "prior_with_profile". The recorded test metrics are then
        # those of the chosen mix (chosen on that part, so slightly optimistic).
        X_test, t_test = X_all[test_rows], times.asi8[test_rows]
        short_targets = {h: targets[h] for h in HORIZONS}
        scores = {"blend": metrics}
        for n in alternatives:
            i = names.index(n)
            alone = copy.copy(evaluated)
            alone.model = BlendForecaster([_refit(fitted[i], X_fv, Y_fv, random_state)], np.ones((len(HORIZONS), 1)))
            alone.far_weights = None
            scores[n] = {"per_horizon": _evaluate_rows(alone, X_test, t_test, short_targets, tz)}
        choice = {}
        for h in HORIZONS:
            best = "blend"
            for n in alternatives:
                if decide(scores[n], scores[best], horizons=(h,))["better"]:
                    best = n
            choice[h] = best
        if any(c != "blend" for c in choice.values()):
            union, union_preds = list(kept), list(kept_preds)
            for n in alternatives:
                if n in choice.values() and fitted[names.index(n)] not in union:
                    union.append(fitted[names.index(n)])
                    union_preds.append(preds[names.index(n)])
            mixed = np.zeros((len(HORIZONS), len(union)))
            for j, h in enumerate(HORIZONS):
                if choice[h] == "blend":
                    mixed[j, : len(kept)] = weights[j]
                else:
                    mixed[j, union.index(fitted[names.index(choice[h])])] = 1.0
            used = mixed.max(axis=0) > 0
            union = [c for c, u in zip(union, used) if u]
            union_preds = [p for p, u in zip(union_preds, used) if u]
            evidence = {
                n: [metric_value(scores[n], h, "mae") for h in DEPLOY_HORIZONS] for n in ["blend", *alternatives]
            }
            log("per horizon, on the test part: " + ", ".join(f"{h} min {choice[h]}" for h in (30, 60, 120))
                + "; MAE 30/60 " + "; ".join(f"{n} {v[0]}/{v[1]}" for n, v in evidence.items()))
            kept, weights = union, mixed[:, used]  # what serves, refitted on all data below
            evaluated, conformal, algorithm, hyper, metrics = assemble(kept, weights, union_preds)
            hyper["per_horizon_choice"] = {str(h): c for h, c in choice.items()}
            hyper["per_horizon_evidence_mae_30_60"] = evidence
    elif release >= RELEASE_2 and "prior" in names and [c.name for c in kept] != ["prior"]:
        # The person's own candidates must earn their place on the untouched test part too: where
        # the blend does not beat the prior alone there at 30/60 min, the model keeps the prior's
        # short horizons and stays personal where the prior alone is not: its bands (calibrated
        # on the person's own out-of-sample errors) and its far horizons (the person's
        # time-of-day profile). Without this such a person would be served the prior alone,
        # whose far horizons know nothing of their day.
        # The deploy rule itself (decide), against the prior as it would serve (PopulationForecaster).
        alone = _evaluate_rows(PopulationForecaster(prior), X_all[test_rows], times.asi8[test_rows], targets, tz)
        verdict = decide(metrics, {"per_horizon": alone})
        if not verdict["better"]:
            blend_mae, prior_mae = (list(verdict[k].values()) for k in ("candidate_mae", "reference_mae"))
            log(f"test part: blend MAE 30/60 {blend_mae[0]}/{blend_mae[1]} does not beat the prior alone "
                f"({prior_mae[0]}/{prior_mae[1]}): the prior's short horizons with the person's bands and "
                "far horizons")
            i = names.index("prior")
            kept, weights = [fitted[i]], np.ones((len(HORIZONS), 1))
            evaluated, conformal, algorithm, hyper, metrics = assemble(kept, weights, [preds[i]])
            hyper["prior_kept_because"] = {"blend_mae": blend_mae, "prior_mae": prior_mae}
    s = metrics["summary"]
    log(
        f"test {test_start:%Y-%m-%d %H:%M} .. {test_end:%Y-%m-%d %H:%M} UTC, {metrics['n_origins']} origins: "
        f"MAE 60 min model {s['model']['mae_60']} / AR2 {s['baseline_ar2']['mae_60']} / "
        f"persistence {s['persistence']['mae_60']} mg/dL; 80% coverage {s['model']['coverage_80_mean']}, "
        f"95% coverage {s['model']['coverage_95_mean']}"
    )

    # 6. the served model: same choices, refitted on all data (most recent days included)
    if refit_on_all:
        t0 = time.perf_counter()
        all_rows = np.isfinite(X_all).all(axis=1)
        final_model = BlendForecaster([_refit(c, X_all[all_rows], Y_all[all_rows], random_state) for c in kept], weights)
        final = GlucoseForecaster(
            final_model, conformal, TimeOfDayProfile().fit(grid, tz), algorithm=algorithm,
            hyperparameters=hyper, features=builder, tz=tz,
        )
        final.far_weights = evaluated.far_weights
        timings["refit_all_s"] = round(time.perf_counter() - t0, 3)
        log("served model: refitted on all data with the chosen hyperparameters and weights")
    else:
        final = evaluated
    timings["total_s"] = round(log.elapsed(), 3)
    final.info = {
        "data_start": grid.index[0].isoformat(),
        "data_end": grid.index[-1].isoformat(),
        "n_readings": figures["n_observed"],
        "test_period": [test_start.isoformat(), test_end.isoformat()],
        "profile_tau_min": final.profile.tau_min if final.profile else None,
    }
    log(f"done in {timings['total_s']:.2f}s ({_short(timings)})")
    return TrainingResult(
        forecaster=final,
        algorithm=algorithm,
        hyperparameters=hyper,
        feature_schema=builder.schema(),
        metrics=metrics,
        data_start=grid.index[0],
        data_end=grid.index[-1],
        n_readings=figures["n_observed"],
        log=log.lines,
        test_period=(test_start, test_end),
        evaluated_forecaster=evaluated,
        timings=timings,
    )


def _shrink_bands_toward_prior(conformal: ConformalIntervals, prior, Xs, times_ns, tz: str, log: _Log) -> None:
    """Release 2's bands start from the prior's too: a person's quantiles come from a few days of
    out-of-sample errors (one day rarely shows all of a person's behaviour; on held-out corpus
    people 1-day bands covered about 70% for a nominal 80%), so they are shrunk toward the
    prior's band widths, expressed in the person's own difficulty units, with weight
    BAND_PRIOR_ROWS / (BAND_PRIOR_ROWS + calibration rows): about two thirds after one day,
    a sixth after a week."""
    n = conformal.n_calibration
    weight = BAND_PRIOR_ROWS / (BAND_PRIOR_ROWS + n)
    complete = np.isfinite(Xs).all(axis=1)
    if not complete.any():
        return
    windows = Release2Features.windows_of(Xs[complete])
    out = prior.forecast(windows, np.asarray(times_ns)[complete], tz)
    known = list(prior.horizons)
    cols = [known.index(h) for h in HORIZONS]
    value = out["value"][:, cols]
    scale = conformal.scale(Xs[complete])
    for key, q in conformal.quantiles.items():
        q_prior = np.median((out[key][:, cols] - value) / scale, axis=0) * POPULATION_BAND_WIDEN
        conformal.quantiles[key] = (1 - weight) * q + weight * q_prior
    log(f"bands: shrunk toward the prior's with weight {weight:.2f} ({n} calibration rows)")


def _choose_far_weights(
    evaluated: GlucoseForecaster, grid, X_all, split, tz: str, log: _Log
) -> dict[int, tuple[float, float]]:
    """Per far knot, the mix of the profile decay, the prior's far forecast (made with the
    person's profile) and the profile median with the lowest MAE out of sample.

    Out of sample: the profile is fitted on the days before the validation part, origins lie in
    the validation part, and only outcomes before the test part count (a 24-hour target of a
    late origin would otherwise reach into the untouched test days). With fewer outcomes than
    FAR_WEIGHT_MIN_ROWS at a knot, FAR_WEIGHT_DEFAULT (the prior with the person's profile).
    """
    knots = list(FAR_BLEND_KNOTS[1:])
    times = grid.index
    val_start, test_start = (pd.Timestamp(int(b), tz="UTC") for b in split["bounds"][:2])
    rows = _origin_rows(grid, X_all, split["before_test"] & np.asarray(times >= val_start))
    index = np.flatnonzero(rows)
    if len(index) > FAR_WEIGHT_MAX_ROWS:
        index = index[np.linspace(0, len(index) - 1, FAR_WEIGHT_MAX_ROWS).astype(int)]
        rows = np.zeros(len(rows), dtype=bool)
        rows[index] = True
    targets = _absolute_targets(grid, rows, knots)
    X, times_ns = X_all[rows], times.asi8[rows]
    probe = copy.copy(evaluated)
    probe.far_weights = None
    probe.profile = TimeOfDayProfile().fit(grid.loc[times < val_start], tz)
    if len(X):
        decay = probe.forecast_matrix(X, times_ns, knots, tz)["value"]
        prior = probe.prior_far(X, times_ns, knots, tz)["value"]
        median = probe.profile_far(times_ns, knots, tz)["value"]
    weights: dict[int, tuple[float, float]] = {}
    for c, h in enumerate(knots):
        ok = np.zeros(0, dtype=bool)
        if len(X):
            ok = np.isfinite(targets[h]) & (times_ns + h * 60 * 10**9 < test_start.value)
        if ok.sum() < FAR_WEIGHT_MIN_ROWS:
            weights[h] = FAR_WEIGHT_DEFAULT
            continue
        best = None
        for wp in FAR_WEIGHT_GRID:
            for wm in FAR_WEIGHT_GRID:
                if wp + wm > 1.0 + 1e-9:
                    continue
                value = (1 - wp - wm) * decay[ok, c] + wp * prior[ok, c] + wm * median[ok, c]
                error = float(np.mean(np.abs(value - targets[h][ok])))
                if best is None or error < best[0] - 1e-9:
                    best = (error, (wp, wm))
        weights[h] = best[1]
    log("far horizons, weights of the prior / the profile median (rest: the profile decay): "
        + ", ".join(f"{h} min {wp:.2f}/{wm:.2f}" for h, (wp, wm) in weights.items()))
    return weights


def _short(d: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("alpha_scores", "features"))
    return text if len(text) < 200 else text[:197] + "..."
