"""Forecasting candidates behind one small interface (numeric core, no Django).

Every candidate maps the feature matrix X (columns in `feature_names()` order) to the predicted
CHANGE from the current value at each short horizon (5..120 min, `HORIZONS`), shape (n, 24).

- PersistenceForecaster: no change. The floor every model must beat.
- AR2Forecaster: Nightscout's AR2 in log space; needs no training, serves people without a model.
- DampedTrendForecaster: the last 15-minute slope carried forward with a damping factor fitted on
  the person's data (one number, so it cannot overfit).
- RidgeForecaster: StandardScaler + multi-output Ridge (one fit for all horizons).
- XGBoostForecaster: `hist` boosters with early stopping on a temporal validation fold.
- PriorForecaster: the population prior's forecast, read from the release-2 feature columns
  `prior_change_*` (computed once per window by the feature builder); needs no training.
- BlendForecaster: per-horizon non-negative weights summing to one over the candidates, chosen on
  the temporal validation fold. Because persistence and AR2 are candidates, the blend shrinks
  toward them by itself when a person's data is short or noisy.

Serialisation uses safe formats only: JSON for numbers, skops with an explicit trusted-type list
for scikit-learn objects, XGBoost's own UBJSON for boosters. Never pickle.
"""

from __future__ import annotations

import numpy as np
import skops.io as sio
import xgboost as xgb
from scipy.optimize import nnls
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlmodels.core.features import (
    HORIZONS,
    PRIOR_CHANGE_FEATURES,
    TREATMENT_INPUT_FEATURES,
    WINDOW_VALUE_FEATURES,
    all_feature_names,
)

AR2_BG_REF = 140.0
AR2_BG_MIN = 36.0
AR2_BG_MAX = 400.0
AR2_COEF = (-0.723, 1.716)

# The only types a stored ridge file may contain; never trust the list a file declares itself.
SKOPS_TRUSTED_TYPES = [
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._ridge.Ridge",
]

# Column indices refer to the widest schema's matrix; release 1's columns are its prefix.
_FEATURES = all_feature_names()
_PRIOR_COLS = np.array([_FEATURES.index(f) for f in PRIOR_CHANGE_FEATURES])
_I_NOW = _FEATURES.index("glucose_now")
_I_LAG5 = _FEATURES.index("lag_5min")
_I_LAG10 = _FEATURES.index("lag_10min")
_I_LAG15 = _FEATURES.index("lag_15min")


def default_features(kind: str, release: int = 1, *, treatments: bool = False) -> list[str]:
    """Feature subset a learned candidate uses by default.

    Day of week is left out: with the one to three weeks of data a person has, each weekday occurs
    only a few times, so any weekday effect a model finds is mostly chance (on the Broll data it
    made ridge clearly worse). Time of day is kept for the trees, which can pick up meal times;
    ridge can only use it as a single sinusoid, which hurt more than it helped.

    With release 2 both also see the population prior's forecast changes: the person's model
    then learns how far to trust (and how to correct) the prior on their own data. With
    `treatments` (release 3's treatment candidates) they also see the recorded treatments'
    features; without, never (release 3 keeps glucose-only candidates beside them).
    """
    names = [n for n in _FEATURES if not n.startswith("day_of_week") and n not in WINDOW_VALUE_FEATURES]
    if not treatments:
        names = [n for n in names if n not in TREATMENT_INPUT_FEATURES]
    if release < 2:
        names = [n for n in names if n not in PRIOR_CHANGE_FEATURES]
    if kind == "ridge":
        names = [n for n in names if not n.startswith("time_of_day")]
    return names


def _as_matrix(X) -> np.ndarray:
    return np.asarray(X, dtype=np.float64)


class Candidate:
    """Interface: fit(X, Y, X_val, Y_val) -> self; predict(X) -> (n, len(HORIZONS)) changes."""

    name = "candidate"
    has_contributions = False

    def fit(self, X, Y, X_val=None, Y_val=None, **kwargs):  # noqa: ARG002 - uniform interface
        return self

    def predict(self, X) -> np.ndarray:
        raise NotImplementedError

    def contributions(self, X, horizon_index: int) -> np.ndarray | None:  # noqa: ARG002
        return None

    def base_part(self, X, horizon_index: int) -> dict[str, np.ndarray]:  # noqa: ARG002
        """Share of the forecast that comes from a rule-based base model, by pseudo-feature name."""
        return {}

    def params(self) -> dict:
        return {}

    def to_files(self, prefix: str) -> dict[str, bytes]:  # noqa: ARG002
        return {}


class PersistenceForecaster(Candidate):
    name = "persistence"

    def predict(self, X) -> np.ndarray:
        return np.zeros((len(X), len(HORIZONS)))


def ar2_path(now: np.ndarray, five_min_ago: np.ndarray, steps: int) -> np.ndarray:
    """Nightscout AR2 forecasts (mg/dL), shape (n, steps), for 5, 10, ... minutes ahead."""
    now = np.clip(np.asarray(now, dtype=float), AR2_BG_MIN, AR2_BG_MAX)
    before = np.clip(np.asarray(five_min_ago, dtype=float), AR2_BG_MIN, AR2_BG_MAX)
    prev = np.log(before / AR2_BG_REF)
    curr = np.log(now / AR2_BG_REF)
    log_path = np.empty((len(now), steps))
    for k in range(steps):
        nxt = AR2_COEF[0] * prev + AR2_COEF[1] * curr
        prev, curr = curr, nxt
        log_path[:, k] = curr
    # The recursion runs unclamped in log space; only the reported values are clamped.
    return np.clip(AR2_BG_REF * np.exp(log_path), AR2_BG_MIN, AR2_BG_MAX)


class AR2Forecaster(Candidate):
    name = "ar2"

    # One forecast asks for AR2 several times (as a candidate, as the trees' base, for the
    # explanation); remember the last answer, keyed by the input's bytes.
    _last: tuple[bytes, np.ndarray] | None = None

    def predict(self, X) -> np.ndarray:
        X = _as_matrix(X)
        key = X[:, [_I_NOW, _I_LAG5]].tobytes()
        last = AR2Forecaster._last
        if last is not None and last[0] == key:
            return last[1].copy()
        now = X[:, _I_NOW]
        change = ar2_path(now, now + X[:, _I_LAG5], len(HORIZONS)) - now[:, None]
        AR2Forecaster._last = (key, change)
        return change.copy()


class PriorForecaster(Candidate):
    """The population prior's forecast change, as the release-2 features carry it."""

    name = "prior"

    def predict(self, X) -> np.ndarray:
        X = _as_matrix(X)
        if X.shape[1] <= _PRIOR_COLS.max():
            raise ValueError("the prior candidate needs release-2 features (prior_change_* columns)")
        return X[:, _PRIOR_COLS].copy()


class DampedTrendForecaster(Candidate):
    """Least-squares slope over the last 15 minutes, carried forward damped by phi per 5 min."""

    name = "damped_trend"
    PHI_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95)

    def __init__(self, phi: float = 0.85):
        self.phi = float(phi)

    @staticmethod
    def _slope(X: np.ndarray) -> np.ndarray:
        # points at -15, -10, -5, 0 min relative to now: values lag15, lag10, lag5, 0
        y = np.column_stack([X[:, _I_LAG15], X[:, _I_LAG10], X[:, _I_LAG5], np.zeros(len(X))])
        x = np.array([-3.0, -1.0, 1.0, 3.0]) / 2.0  # centred step index (units: 5 minutes)
        return (y * x).sum(axis=1) / (x**2).sum()

    def _multipliers(self, phi: float) -> np.ndarray:
        powers = phi ** np.arange(1, len(HORIZONS) + 1)
        return np.cumsum(powers)

    def fit(self, X, Y, X_val=None, Y_val=None, **kwargs):
        X, Y = _as_matrix(X), _as_matrix(Y)
        slope = self._slope(X)
        best = None
        for phi in self.PHI_GRID:
            pred = slope[:, None] * self._multipliers(phi)[None, :]
            err = np.nanmean(np.abs(pred - Y))
            if best is None or err < best[0]:
                best = (err, phi)
        self.phi = best[1]
        return self

    def predict(self, X) -> np.ndarray:
        X = _as_matrix(X)
        return self._slope(X)[:, None] * self._multipliers(self.phi)[None, :]

    def params(self) -> dict:
        return {"phi": self.phi}


def _complete_rows(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    return np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)


class RidgeForecaster(Candidate):
    """StandardScaler + Ridge, one multi-output fit for all horizons; alpha chosen on validation."""

    name = "ridge"
    has_contributions = True
    ALPHA_GRID = (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0)

    def __init__(self, alpha: float | None = None, features: list[str] | None = None):
        self.alpha = alpha
        self.features = list(features) if features is not None else default_features("ridge")
        self._cols = np.array([_FEATURES.index(f) for f in self.features])
        self.pipeline: Pipeline | None = None
        self.alpha_scores: dict[str, float] = {}
        self._cache()

    def _make(self, alpha: float) -> Pipeline:
        return Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=alpha))])

    def fit(self, X, Y, X_val=None, Y_val=None, **kwargs):
        X, Y = _as_matrix(X)[:, self._cols], _as_matrix(Y)
        rows = _complete_rows(X, Y)
        if self.alpha is None:
            if X_val is None:
                self.alpha = 100.0
            else:
                X_val, Y_val = _as_matrix(X_val)[:, self._cols], _as_matrix(Y_val)
                vrows = np.isfinite(X_val).all(axis=1)
                X_val, Y_val = X_val[vrows], Y_val[vrows]
                best = None
                for alpha in self.ALPHA_GRID:
                    model = self._make(alpha).fit(X[rows], Y[rows])
                    err = float(np.nanmean(np.abs(model.predict(X_val) - Y_val)))
                    self.alpha_scores[str(alpha)] = round(err, 4)
                    if best is None or err < best[0]:
                        best = (err, alpha)
                self.alpha = best[1]
        self.pipeline = self._make(self.alpha).fit(X[rows], Y[rows])
        self._cache()
        return self

    def _cache(self) -> None:
        # Plain arrays so single-row serving skips scikit-learn's per-call validation overhead.
        if self.pipeline is None:
            return
        scaler, ridge = self.pipeline.named_steps["scale"], self.pipeline.named_steps["ridge"]
        self._mean = scaler.mean_.copy()
        self._scale = scaler.scale_.copy()
        self._coef = np.atleast_2d(ridge.coef_).copy()  # (n_horizons, n_features)
        self._intercept = np.atleast_1d(ridge.intercept_).copy()

    def predict(self, X) -> np.ndarray:
        z = (_as_matrix(X)[:, self._cols] - self._mean) / self._scale
        return z @ self._coef.T + self._intercept

    def contributions(self, X, horizon_index: int) -> np.ndarray:
        X = _as_matrix(X)
        z = (X[:, self._cols] - self._mean) / self._scale
        out = np.zeros_like(X)
        out[:, self._cols] = z * self._coef[horizon_index][None, :]
        return out

    def params(self) -> dict:
        return {"alpha": self.alpha, "alpha_scores": self.alpha_scores, "features": self.features}

    def to_files(self, prefix: str) -> dict[str, bytes]:
        return {f"{prefix}.skops": sio.dumps(self.pipeline)}

    @classmethod
    def from_files(cls, files: dict[str, bytes], prefix: str, params: dict) -> "RidgeForecaster":
        model = cls(alpha=params.get("alpha"), features=params.get("features"))
        model.pipeline = sio.loads(files[f"{prefix}.skops"], trusted=SKOPS_TRUSTED_TYPES)
        if not isinstance(model.pipeline, Pipeline):
            raise ValueError("stored ridge file does not hold a scikit-learn Pipeline")
        model.alpha_scores = params.get("alpha_scores", {})
        model._cache()
        return model


class PlainRidgeForecaster(RidgeForecaster):
    """The person's own plain regression: ridge on the 2-hour window of their glucose alone (its
    lags, rates and spreads: release 1's ridge inputs), never the prior's forecast. Release 2
    keeps it as a candidate so that, per horizon, nobody is served worse than this simple model
    of their own data (training's per-horizon choice; bench/cold_start.py's per-person ridge)."""

    name = "plain_ridge"

    def __init__(self, alpha: float | None = None, features: list[str] | None = None):
        super().__init__(alpha=alpha, features=features if features is not None else default_features("ridge", 1))


class RidgeOnAR2Forecaster(RidgeForecaster):
    """Ridge on AR2's errors: strong regularisation then shrinks toward AR2, not toward "no change"."""

    name = "ridge_ar2"

    def __init__(self, alpha: float | None = None, features: list[str] | None = None):
        super().__init__(alpha=alpha, features=features)
        self._base_model = AR2Forecaster()

    def fit(self, X, Y, X_val=None, Y_val=None, **kwargs):
        X = _as_matrix(X)
        Y = _as_matrix(Y) - self._base_model.predict(X)
        if X_val is not None:
            X_val = _as_matrix(X_val)
            Y_val = _as_matrix(Y_val) - self._base_model.predict(X_val)
        return super().fit(X, Y, X_val, Y_val)

    def predict(self, X) -> np.ndarray:
        return super().predict(X) + self._base_model.predict(X)

    def base_part(self, X, horizon_index: int) -> dict[str, np.ndarray]:
        return {"ar2_trend": self._base_model.predict(X)[:, horizon_index]}


class RidgeOnPriorForecaster(RidgeOnAR2Forecaster):
    """Ridge on the population prior's errors (release 2): regularisation shrinks toward the prior."""

    name = "ridge_prior"

    def __init__(self, alpha: float | None = None, features: list[str] | None = None):
        super().__init__(alpha=alpha, features=features)
        self._base_model = PriorForecaster()

    def base_part(self, X, horizon_index: int) -> dict[str, np.ndarray]:
        return {"prior_trend": self._base_model.predict(X)[:, horizon_index]}


class XGBoostForecaster(Candidate):
    """Gradient-boosted trees (`hist`), one booster per fitted horizon.

    To keep training within a few seconds per person, boosters are fitted at a subset of
    horizons (`fit_horizons`) and the change at the other horizons is linearly interpolated
    between them (change at 0 minutes is 0). Glucose change curves are smooth at 5-minute
    resolution, so this costs almost no accuracy.

    Measured alternatives on the Broll people (fit 50% / validation 20% / test last 30%, trees
    alone): one booster for each of the 24 horizons gave the same MAE at 30/60 min (11.9/20.7)
    in 3.3x the time (1.42 vs 0.43 s); XGBoost's multi_output_tree was slower (0.76 s) and worse
    (12.2/20.9); one booster with 5 targets (one_output_per_tree) was as accurate alone but
    its SHAP contributions cost 5x (all targets at once) and the blend came out no better.
    """

    name = "xgboost"
    has_contributions = True
    DEFAULT_FIT_HORIZONS = (15, 30, 60, 90, 120)

    def __init__(
        self,
        *,
        max_depth: int = 3,
        learning_rate: float = 0.1,
        max_rounds: int = 200,
        early_stopping_rounds: int = 15,
        min_child_weight: float = 10.0,
        reg_lambda: float = 10.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        fit_horizons: tuple[int, ...] = DEFAULT_FIT_HORIZONS,
        nthread: int = 1,
        random_state: int = 0,
        features: list[str] | None = None,
        base: str | None = "ar2",
    ):
        # Trees learn the person's correction to a base forecast (AR2, or in release 2 the
        # population prior) rather than the whole change: with few days of data they then fall
        # back to that base instead of to "no change".
        self.base = base
        self._base_model = {"ar2": AR2Forecaster, "prior": PriorForecaster}[base]() if base else None
        self.features = list(features) if features is not None else default_features("xgboost")
        self._cols = np.array([_FEATURES.index(f) for f in self.features])
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.fit_horizons = tuple(int(h) for h in fit_horizons)
        self.nthread = nthread
        self.random_state = random_state
        self.boosters: dict[int, xgb.Booster] = {}
        self.best_rounds: dict[int, int] = {}
        self._interp = None
        self._dm_cache: tuple[bytes, xgb.DMatrix] | None = None

    def _xgb_params(self) -> dict:
        return {
            "tree_method": "hist",
            # 32 bins instead of 256: four times faster per round and CGM features are smooth
            # enough that finer split points add nothing measurable.
            "max_bin": 32,
            "objective": "reg:squarederror",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "nthread": self.nthread,
            "seed": self.random_state,
            "verbosity": 0,
        }

    def fit(self, X, Y, X_val=None, Y_val=None, *, rounds: dict[int, int] | None = None, **kwargs):
        """With X_val: early stopping per horizon. With `rounds`: fixed rounds (refit)."""
        X_full = _as_matrix(X)
        Y = _as_matrix(Y)
        if self._base_model is not None:
            Y = Y - self._base_model.predict(X_full)
            if X_val is not None:
                Y_val = _as_matrix(Y_val) - self._base_model.predict(_as_matrix(X_val))
        X = X_full[:, self._cols]
        finite_x = np.isfinite(X).all(axis=1)
        self.boosters, new_rounds = {}, {}
        for h in self.fit_horizons:
            j = HORIZONS.index(h)
            rows = finite_x & np.isfinite(Y[:, j])
            dtrain = xgb.DMatrix(X[rows], label=Y[rows, j], nthread=self.nthread)
            if rounds is not None:
                booster = xgb.train(self._xgb_params(), dtrain, num_boost_round=int(rounds[h]))
                new_rounds[h] = int(rounds[h])
            elif X_val is not None:
                Xv, Yv = _as_matrix(X_val)[:, self._cols], _as_matrix(Y_val)
                vrows = np.isfinite(Xv).all(axis=1) & np.isfinite(Yv[:, j])
                dval = xgb.DMatrix(Xv[vrows], label=Yv[vrows, j], nthread=self.nthread)
                booster = xgb.train(
                    self._xgb_params(),
                    dtrain,
                    num_boost_round=self.max_rounds,
                    evals=[(dval, "val")],
                    early_stopping_rounds=self.early_stopping_rounds,
                    verbose_eval=False,
                )
                best = int(booster.best_iteration) + 1
                booster = booster[:best]
                new_rounds[h] = best
            else:
                booster = xgb.train(self._xgb_params(), dtrain, num_boost_round=self.max_rounds // 2)
                new_rounds[h] = self.max_rounds // 2
            self.boosters[h] = booster
        self.best_rounds = new_rounds
        self._interp = None
        return self

    def _interpolation(self) -> np.ndarray:
        """(len(fit_horizons)+1, len(HORIZONS)) matrix mapping [0, fitted...] to all horizons."""
        if self._interp is None:
            knots = np.array([0, *self.fit_horizons], dtype=float)
            matrix = np.zeros((len(knots), len(HORIZONS)))
            for j, h in enumerate(HORIZONS):
                basis = np.eye(len(knots))
                matrix[:, j] = [np.interp(h, knots, basis[i]) for i in range(len(knots))]
            self._interp = matrix[1:]  # the knot at 0 has value 0
        return self._interp

    def _small_dmatrix(self, X32: np.ndarray) -> xgb.DMatrix:
        """DMatrix for a few rows, reused between predict and contributions of one forecast."""
        key = X32.tobytes()
        cached = self._dm_cache  # read once: other threads may replace it meanwhile
        if cached is not None and cached[0] == key:
            return cached[1]
        dm = xgb.DMatrix(X32, nthread=1)
        self._dm_cache = (key, dm)
        return dm

    def predict_fitted(self, X) -> np.ndarray:
        X = np.ascontiguousarray(_as_matrix(X)[:, self._cols], dtype=np.float32)
        if len(X) <= 64:
            # For a few rows one shared DMatrix beats per-booster inplace_predict's setup cost.
            dm = self._small_dmatrix(X)
            return np.column_stack(
                [self.boosters[h].predict(dm, validate_features=False) for h in self.fit_horizons]
            )
        return np.column_stack(
            [self.boosters[h].inplace_predict(X, validate_features=False) for h in self.fit_horizons]
        )

    def predict(self, X) -> np.ndarray:
        out = self.predict_fitted(X) @ self._interpolation()
        if self._base_model is not None:
            out += self._base_model.predict(X)
        return out

    def base_part(self, X, horizon_index: int) -> dict[str, np.ndarray]:
        if self._base_model is None:
            return {}
        return {f"{self.base}_trend": self._base_model.predict(X)[:, horizon_index]}

    def contributions(self, X, horizon_index: int) -> np.ndarray:
        """SHAP values (without the bias column) at a horizon, interpolated like the predictions."""
        X = _as_matrix(X)
        weights = self._interpolation()[:, horizon_index]
        X32 = np.ascontiguousarray(X[:, self._cols], dtype=np.float32)
        dm = self._small_dmatrix(X32) if len(X) <= 64 else xgb.DMatrix(X32, nthread=1)
        out = np.zeros_like(X)
        for w, h in zip(weights, self.fit_horizons):
            if w == 0:
                continue
            out[:, self._cols] += self.boosters[h].predict(dm, pred_contribs=True)[:, :-1] * w
        return out

    def params(self) -> dict:
        return {
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "reg_lambda": self.reg_lambda,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "fit_horizons": list(self.fit_horizons),
            "features": self.features,
            "base": self.base,
            "rounds": {str(h): r for h, r in self.best_rounds.items()},
        }

    def to_files(self, prefix: str) -> dict[str, bytes]:
        return {f"{prefix}_h{h}.ubj": bytes(b.save_raw("ubj")) for h, b in self.boosters.items()}

    @classmethod
    def from_files(cls, files: dict[str, bytes], prefix: str, params: dict) -> "XGBoostForecaster":
        model = cls(
            max_depth=params["max_depth"],  # a subclass keeps its own name
            learning_rate=params["learning_rate"],
            min_child_weight=params["min_child_weight"],
            reg_lambda=params["reg_lambda"],
            subsample=params["subsample"],
            colsample_bytree=params["colsample_bytree"],
            fit_horizons=tuple(params["fit_horizons"]),
            features=params.get("features"),
            base=params.get("base"),
        )
        for h in model.fit_horizons:
            booster = xgb.Booster(params={"nthread": 1})
            booster.load_model(bytearray(files[f"{prefix}_h{h}.ubj"]))
            model.boosters[h] = booster
        model.best_rounds = {int(h): int(r) for h, r in params.get("rounds", {}).items()}
        return model


class RidgeTreatmentsForecaster(RidgeForecaster):
    """Release 3: ridge on the release-2 inputs plus the recorded treatments' features. Its
    coefficients are the person's sensitivity to insulin and carbs (mg/dL per unit, per gram) at
    each horizon, and how it weighs the several absorption curves is their absorption."""

    name = "ridge_treatments"

    def __init__(self, alpha: float | None = None, features: list[str] | None = None):
        super().__init__(alpha=alpha, features=features if features is not None else default_features(
            "ridge", 3, treatments=True))


class XGBoostTreatmentsForecaster(XGBoostForecaster):
    """Release 3: trees on the release-2 inputs plus the treatments' features, correcting the prior."""

    name = "xgboost_treatments"

    def __init__(self, **kwargs):
        kwargs.setdefault("features", default_features("xgboost", 3, treatments=True))
        kwargs.setdefault("base", "prior")
        super().__init__(**kwargs)


def nonnegative_simplex_weights(
    P: np.ndarray, y: np.ndarray, *, prior: np.ndarray | None = None, prior_rows: float = 0.0, penalty: float = 1e3
) -> np.ndarray:
    """argmin ||P w - y||² + lam ||w - prior||²  s.t. w >= 0, sum w = 1.

    NNLS on an augmented system: a heavily weighted row enforces the sum, and `prior_rows`
    pseudo-observations (each worth one validation row of typical size) pull w toward `prior`,
    so a short validation fold cannot swing the blend to one lucky candidate.
    """
    rows = np.isfinite(y) & np.isfinite(P).all(axis=1)
    P, y = P[rows], y[rows]
    k = P.shape[1]
    if len(y) == 0:
        return np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=float)
    typical = max(float(np.sqrt((y**2).mean())), 1.0)
    scale = penalty * np.sqrt(len(y)) * typical
    blocks_a = [P, np.full((1, k), scale)]
    blocks_b = [y, [scale]]
    if prior is not None and prior_rows > 0:
        lam = np.sqrt(prior_rows) * typical
        blocks_a.append(lam * np.eye(k))
        blocks_b.append(lam * np.asarray(prior, dtype=float))
    w, _ = nnls(np.vstack(blocks_a), np.concatenate(blocks_b), maxiter=50 * k)
    total = w.sum()
    return w / total if total > 0 else np.full(k, 1.0 / k)


class BlendForecaster(Candidate):
    """Per-horizon convex combination of candidate forecasts (weights >= 0, summing to 1)."""

    name = "blend"
    has_contributions = True

    def __init__(self, candidates: list[Candidate], weights: np.ndarray | None = None):
        self.candidates = list(candidates)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)

    def fit_weights(
        self, predictions: list[np.ndarray], Y_val: np.ndarray, prior_rows: float = 0.0, target=None
    ):
        """Weights per horizon from the candidates' out-of-sample predictions on validation.

        `prior_rows` pseudo-observations pull the weights toward `target` (default equal weights).
        """
        Y_val = _as_matrix(Y_val)
        n_cand = len(self.candidates)
        prior = np.full(n_cand, 1.0 / n_cand) if target is None else np.asarray(target, dtype=float)
        weights = np.zeros((len(HORIZONS), n_cand))
        for j in range(len(HORIZONS)):
            P = np.column_stack([p[:, j] for p in predictions])
            weights[j] = nonnegative_simplex_weights(P, Y_val[:, j], prior=prior, prior_rows=prior_rows)
        self.weights = weights
        return self

    def predict(self, X) -> np.ndarray:
        X = _as_matrix(X)
        out = np.zeros((len(X), len(HORIZONS)))
        for c, cand in enumerate(self.candidates):
            w = self.weights[:, c]
            if not np.any(w > 0):
                continue
            out += cand.predict(X) * w[None, :]
        return out

    def contributions(self, X, horizon_index: int) -> np.ndarray:
        """Feature contributions of the learned candidates, weighted like their forecasts."""
        X = _as_matrix(X)
        out = np.zeros_like(X)
        for c, cand in enumerate(self.candidates):
            w = self.weights[horizon_index, c]
            if w > 0 and cand.has_contributions:
                out += w * cand.contributions(X, horizon_index)
        return out

    def trend_contributions(self, X, horizon_index: int) -> dict[str, np.ndarray]:
        """The rule-based candidates' weighted share of the forecast, named as pseudo-features."""
        X = _as_matrix(X)
        out = {}
        for c, cand in enumerate(self.candidates):
            w = self.weights[horizon_index, c]
            if w <= 0:
                continue
            if not cand.has_contributions and cand.name != "persistence":
                parts = {f"{cand.name}_trend": cand.predict(X)[:, horizon_index]}
            else:
                parts = cand.base_part(X, horizon_index)
            for key, value in parts.items():
                out[key] = out.get(key, 0.0) + w * value
        return out

    def params(self) -> dict:
        return {
            "candidates": [c.name for c in self.candidates],
            "weights": {str(h): [round(float(v), 6) for v in self.weights[j]] for j, h in enumerate(HORIZONS)},
        }


CANDIDATE_CLASSES = {
    "persistence": PersistenceForecaster,
    "ar2": AR2Forecaster,
    "damped_trend": DampedTrendForecaster,
    "ridge": RidgeForecaster,
    "plain_ridge": PlainRidgeForecaster,
    "ridge_ar2": RidgeOnAR2Forecaster,
    "ridge_prior": RidgeOnPriorForecaster,
    "xgboost": XGBoostForecaster,
    "prior": PriorForecaster,
    "ridge_treatments": RidgeTreatmentsForecaster,
    "xgboost_treatments": XGBoostTreatmentsForecaster,
}


def candidate_from_files(name: str, files: dict[str, bytes], params: dict) -> Candidate:
    if name == "ridge":
        return RidgeForecaster.from_files(files, "ridge", params)
    if name == "plain_ridge":
        return PlainRidgeForecaster.from_files(files, "plain_ridge", params)
    if name == "ridge_ar2":
        return RidgeOnAR2Forecaster.from_files(files, "ridge_ar2", params)
    if name == "ridge_prior":
        return RidgeOnPriorForecaster.from_files(files, "ridge_prior", params)
    if name == "xgboost":
        return XGBoostForecaster.from_files(files, "xgboost", params)
    if name == "ridge_treatments":
        return RidgeTreatmentsForecaster.from_files(files, name, params)
    if name == "xgboost_treatments":
        return XGBoostTreatmentsForecaster.from_files(files, name, params)
    if name == "damped_trend":
        return DampedTrendForecaster(phi=params.get("phi", 0.85))
    if name in ("persistence", "ar2", "prior"):
        return CANDIDATE_CLASSES[name]()
    raise ValueError(f"unknown candidate {name!r} in stored model")
