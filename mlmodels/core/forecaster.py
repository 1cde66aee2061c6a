"""The stored, served forecaster (numeric core, no Django).

`GlucoseForecaster` bundles a fitted short-term model (a blend of candidates, 5..120 minutes),
calibrated conformal bands and the person's time-of-day profile (125 minutes .. 24 hours).
`BaselineForecaster` needs no training: Nightscout's AR2 with population-wide bands that widen
with the horizon, for people who have no model yet.

Storage is `to_files()` / `from_files()`: a dict of file name -> bytes in safe formats only
(JSON, skops with an explicit trusted-type list, XGBoost UBJSON). No pickle.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmodels.core.conformal import ConformalIntervals
from mlmodels.core.estimators import (
    AR2Forecaster,
    BlendForecaster,
    Candidate,
    candidate_from_files,
)
from mlmodels.core.features import (
    HORIZONS,
    MAX_SHORT_HORIZON,
    WINDOW_MIN,
    WINDOW_STEPS,
    FeatureSchema,
    FeatureSchemaMismatch,
    feature_names,
)
from mlmodels.core.preparation import (
    MAX_BRIDGE_MIN,
    STEP_MIN,
    STEP_NS,
    grid_arrays,
    reading_arrays,
)
from mlmodels.core.profile import TimeOfDayProfile
from mlmodels.core.schemas import FeatureBuilder, Release1Features, Release2Features, Release3Features, builder_for

FILE_FORMAT_VERSION = 1
# Release 2 beyond 120 minutes: weights of the population prior's far forecast (made with the
# person's own profile) and of the profile median against the profile decay, at these horizons,
# linear in between; 0 at 120 so the forecast stays continuous where the short-term model ends.
FAR_BLEND_KNOTS = (120, 180, 240, 360, 720, 1440)
MANIFEST = "manifest.json"
MAX_HORIZON = 1440
STALE_AFTER = pd.Timedelta(minutes=30)
CLAMP_LOW, CLAMP_HIGH = 40.0, 400.0
TOP_FEATURES = 5
MINUTE_NS = 60 * 10**9
# Readings older than this before the last one cannot influence the window (it covers 120 min,
# plus enough before it to bridge a short gap at its start).
LOOKBACK = pd.Timedelta(minutes=WINDOW_MIN + MAX_BRIDGE_MIN + STEP_MIN)

__all__ = [
    "BaselineForecaster",
    "Forecast",
    "FeatureSchemaMismatch",
    "GlucoseForecaster",
    "NotEnoughReadings",
    "StaleReadings",
]


class ForecastInputError(ValueError):
    """The readings given cannot support a forecast (the API answers 422 with the message)."""

    code = "invalid_readings"


class NotEnoughReadings(ForecastInputError):
    code = "not_enough_readings"


class StaleReadings(ForecastInputError):
    code = "stale_readings"


@dataclass
class Forecast:
    as_of: pd.Timestamp  # time of the last reading used
    points: list[dict]
    top_features: list[dict]
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    n_readings: int
    gaps_in_window: int  # 5-minute slots in the window without a reading (bridged by interpolation)
    method: str = "model"

    def to_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "points": [{**p, "time": p["time"].isoformat()} for p in self.points],
            "top_features": self.top_features,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "n_readings": self.n_readings,
            "gaps_in_window": self.gaps_in_window,
            "method": self.method,
        }


@dataclass
class InputWindow:
    """The model's input: the last WINDOW_MIN minutes on the 5-minute grid, ending on a reading."""

    values: np.ndarray
    interpolated: np.ndarray
    at_limit: np.ndarray
    end_ns: int
    n_readings: int
    gaps: int  # 5-minute slots without a reading (bridged by interpolation)
    start_ns: int | None = None  # a short-history window's first slot; None: WINDOW_MIN before end

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(self.end_ns, tz="UTC")

    @property
    def start(self) -> pd.Timestamp:
        if self.start_ns is not None:
            return pd.Timestamp(self.start_ns, tz="UTC")
        return self.end - pd.Timedelta(minutes=WINDOW_MIN)


def _check_horizons(horizons: list[int] | None) -> list[int]:
    if horizons is None:
        return list(HORIZONS)
    if len(horizons) == 0:
        raise ValueError("ask for at least one horizon (minutes, multiples of 5 from 5 to 1440)")
    out = []
    for h in horizons:
        if isinstance(h, bool) or int(h) != h or h % STEP_MIN or not (STEP_MIN <= h <= MAX_HORIZON):
            raise ValueError(f"horizon {h!r} must be a multiple of {STEP_MIN} minutes from 5 to {MAX_HORIZON}")
        out.append(int(h))
    return out


def _utc(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return ts.tz_convert("UTC")


def window_from_arrays(
    times_ns: np.ndarray, values: np.ndarray, at_limit: np.ndarray, as_of_ns: int | None
) -> InputWindow:
    """THE input-window rule, on valid readings sorted by time (preparation.valid_readings):
    the window ends on the last reading at or before `as_of` (which may be at most 30 minutes
    older than `as_of`), on a grid anchored on that reading, duplicates averaged, gaps up to
    MAX_BRIDGE_MIN minutes interpolated and none longer. Both the DataFrame path (`predict`) and
    the serving fast path (predictions.fastpath) build their windows here."""
    grid, last_ns = _grid_before(times_ns, values, at_limit, as_of_ns)
    keep = slice(-(WINDOW_STEPS + 1), None)  # the grid ends on the last reading's slot
    window_values = grid["glucose_mg_dl"][keep]
    observed = grid["observed"][keep]
    if len(window_values) < WINDOW_STEPS + 1 or not np.isfinite(window_values).all():
        raise NotEnoughReadings(
            f"a forecast needs readings covering the {WINDOW_MIN} minutes before the last one with no gap "
            f"longer than {MAX_BRIDGE_MIN} minutes; found {int(observed.sum())} readings there"
        )
    return InputWindow(
        values=window_values,
        interpolated=grid["interpolated"][keep],
        at_limit=grid["at_sensor_limit"][keep],
        end_ns=last_ns,
        n_readings=int(observed.sum()),
        gaps=int((~observed).sum()),
    )


def _grid_before(times_ns, values, at_limit, as_of_ns: int | None) -> tuple[dict, int]:
    """The grid of the readings that can reach a window ending on the last reading at or before
    `as_of` (anchored on that reading), and its time; NotEnoughReadings / StaleReadings else."""
    if as_of_ns is not None:
        n = int(np.searchsorted(times_ns, as_of_ns, side="right"))
        times_ns, values, at_limit = times_ns[:n], values[:n], at_limit[:n]
    if len(times_ns) == 0:
        raise NotEnoughReadings("no glucose readings at or before the forecast time")
    last_ns = int(times_ns[-1])
    if as_of_ns is not None and as_of_ns - last_ns > STALE_AFTER.value:
        minutes = int((as_of_ns - last_ns) // MINUTE_NS)
        raise StaleReadings(
            f"the last reading is {minutes} minutes older than the forecast time (limit 30 minutes)"
        )
    lo = int(np.searchsorted(times_ns, last_ns - LOOKBACK.value, side="right"))
    return grid_arrays(times_ns[lo:], values[lo:], at_limit[lo:], last_ns % STEP_NS), last_ns


def short_window_from_arrays(
    times_ns: np.ndarray, values: np.ndarray, at_limit: np.ndarray, as_of_ns: int | None
) -> InputWindow:
    """The short-history rule, for when window_from_arrays finds less than WINDOW_MIN minutes
    without a long gap (a sensor change, a new person): the readings since the last gap longer
    than MAX_BRIDGE_MIN minutes, at the end of a window that is NaN before them. Short-history
    forecasters (AR2) read only its last two slots, so it needs at least two readings at most
    MAX_BRIDGE_MIN minutes apart, the last no older than 30 minutes before `as_of`."""
    grid, last_ns = _grid_before(times_ns, values, at_limit, as_of_ns)
    size = WINDOW_STEPS + 1
    k = min(len(grid["glucose_mg_dl"]), size)
    window = np.full(size, np.nan)
    interpolated = np.zeros(size, dtype=bool)
    limits = np.zeros(size, dtype=bool)
    observed = np.zeros(size, dtype=bool)
    window[-k:] = grid["glucose_mg_dl"][-k:]
    interpolated[-k:] = grid["interpolated"][-k:]
    limits[-k:] = grid["at_sensor_limit"][-k:]
    observed[-k:] = grid["observed"][-k:]
    holes = np.flatnonzero(~np.isfinite(window))
    run = size - (int(holes[-1]) + 1 if len(holes) else 0)  # slots since the last unbridged gap
    if run < 2:
        recent = int(np.count_nonzero((times_ns <= last_ns) & (times_ns > last_ns - STALE_AFTER.value)))
        raise NotEnoughReadings(
            "a forecast needs at least two readings at most 20 minutes apart, the last one from the last "
            f"30 minutes; found {recent} reading{'s' if recent != 1 else ''} in the 30 minutes up to the last one"
        )
    window[: size - run] = np.nan
    observed[: size - run] = False
    return InputWindow(
        values=window,
        interpolated=interpolated,
        at_limit=limits,
        end_ns=last_ns,
        n_readings=int(observed.sum()),
        gaps=int(interpolated[size - run:].sum()),
        start_ns=last_ns - (run - 1) * STEP_NS,
    )


def input_window(readings: pd.DataFrame, as_of: pd.Timestamp | None, *, arrays=None) -> InputWindow:
    """The input window of a readings frame (`arrays`: its reading_arrays, when already made)."""
    times_ns, values, at_limit = arrays if arrays is not None else reading_arrays(readings)
    return window_from_arrays(times_ns, values, at_limit, None if as_of is None else _utc(as_of).value)


def _clamp(x: np.ndarray) -> np.ndarray:
    return np.clip(x, CLAMP_LOW, CLAMP_HIGH)


class GlucoseForecaster:
    """Short-term model + conformal bands + time-of-day profile; what is stored and served."""

    method = "model"

    def __init__(
        self,
        model: BlendForecaster,
        conformal: ConformalIntervals,
        profile: TimeOfDayProfile | None,
        *,
        algorithm: str,
        hyperparameters: dict | None = None,
        features: FeatureBuilder | None = None,
        tz: str = "UTC",
        info: dict | None = None,
    ):
        self.model = model
        self.conformal = conformal
        self.profile = profile
        self.algorithm = algorithm
        self.hyperparameters = hyperparameters or {}
        # The builder of the schema this model was trained on (mlmodels/core/schemas.py).
        self.features = features or Release1Features()
        self.tz = tz
        self.info = info or {}
        # {horizon: (weight of the prior, weight of the profile median)} at FAR_BLEND_KNOTS[1:]
        # (release 2, chosen in training; the rest is the profile decay); None: the decay only.
        self.far_weights: dict[int, tuple[float, float]] | None = None

    @property
    def feature_schema(self) -> FeatureSchema:
        return FeatureSchema(tuple(self.features.names()), self.features.version)

    @property
    def uses_treatments(self) -> bool:
        """Release 3 with a treatment candidate in its blend: the person's records shape it."""
        if not isinstance(self.features, Release3Features):
            return False
        weights = np.asarray(self.model.weights)
        return any(c.name.endswith("_treatments") and weights[:, i].max() > 0 for i, c in enumerate(self.model.candidates))

    def build_features(
        self, windows, interpolated, at_limit, times_ns, tz: str, *, far: bool = False, treatments=None
    ) -> np.ndarray:
        """This model's input matrix from (n, 25) windows (its own schema's builder). `far`: the
        forecast reaches past 2 hours (release 2 then asks the prior once, with the profile).
        `treatments`: the person's records before the origins (release 3; others ignore them)."""
        kwargs = {"treatments": treatments} if isinstance(self.features, Release3Features) else {}
        if far and self.far_weights and isinstance(self.features, Release2Features):
            return self.features.build(windows, interpolated, at_limit, times_ns, tz, profile=self.profile, **kwargs)
        return self.features.build(windows, interpolated, at_limit, times_ns, tz, **kwargs)

    # ----- numeric core on feature matrices (used by training, evaluation and serving) -----
    def predict_change(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def short_term(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Absolute mg/dL forecasts and band edges at HORIZONS for feature rows X (unclamped)."""
        change = self.predict_change(X)
        now = X[:, feature_names().index("glucose_now")][:, None]
        out = {"value": now + change}
        for key, edge in self.conformal.bands(X, change).items():
            out[key] = now + edge
        return out

    def long_term(self, times_ns: np.ndarray, short: dict[str, np.ndarray], horizons: list[int], tz: str, X=None):
        j = HORIZONS.index(MAX_SHORT_HORIZON)
        at_120 = {k: v[:, j] for k, v in short.items()}
        out = self.profile.extend(times_ns, at_120["value"], at_120, horizons, tz)
        if self.far_weights and X is not None and isinstance(self.features, Release2Features):
            out = self._mix_far(out, X, times_ns, horizons, tz)
        return out

    def far_weight(self, horizons) -> tuple[np.ndarray, np.ndarray]:
        """(prior, median) weights at `horizons`: linear between FAR_BLEND_KNOTS, both 0 at 120."""
        knots = list(FAR_BLEND_KNOTS)
        h = np.asarray(horizons, dtype=float)
        prior = [0.0] + [float(self.far_weights.get(k, (0.0, 0.0))[0]) for k in knots[1:]]
        median = [0.0] + [float(self.far_weights.get(k, (0.0, 0.0))[1]) for k in knots[1:]]
        return np.interp(h, knots, prior), np.interp(h, knots, median)

    def prior_far(self, X: np.ndarray, times_ns: np.ndarray, horizons: list[int], tz: str) -> dict[str, np.ndarray]:
        """The population prior's forecast and bands at far `horizons`, with this person's profile."""
        full = self.features.forecast_with_profile(Release2Features.windows_of(X), times_ns, tz, self.profile)
        cols = self.features.prior_columns(horizons)
        return {k: v[:, cols] for k, v in full.items()}

    def profile_far(self, times_ns: np.ndarray, horizons: list[int], tz: str) -> dict[str, np.ndarray]:
        """The person's typical value (profile median) at each target clock time, with its spread."""
        return self.profile.at_horizons(times_ns, horizons, tz)

    def _mix_far(self, out: dict, X: np.ndarray, times_ns, horizons: list[int], tz: str) -> dict:
        wp, wm = (w[None, :] for w in self.far_weight(horizons))
        if not np.any(wp > 0) and not np.any(wm > 0):
            return out
        parts = [(1 - wp - wm, out)]
        if np.any(wp > 0):
            parts.append((wp, self.prior_far(X, times_ns, horizons, tz)))
        if np.any(wm > 0):
            parts.append((wm, self.profile_far(times_ns, horizons, tz)))
        value = sum(w * part["value"] for w, part in parts)
        mixed = {"value": value}
        for key in ("lower_80", "upper_80", "lower_95", "upper_95"):
            # Band offsets mix like the values: each part keeps the spread it was calibrated with.
            mixed[key] = value + sum(w * (part[key] - part["value"]) for w, part in parts)
        return mixed

    def forecast_matrix(self, X: np.ndarray, times_ns: np.ndarray, horizons: list[int], tz: str):
        """Dict of (n, len(horizons)) arrays: value, lower_80, upper_80, lower_95, upper_95 (clamped)."""
        short = self.short_term(X)
        keys = ["value", "lower_80", "upper_80", "lower_95", "upper_95"]
        out = {k: np.full((len(X), len(horizons)), np.nan) for k in keys}
        short_cols = [i for i, h in enumerate(horizons) if h <= MAX_SHORT_HORIZON]
        long_cols = [i for i, h in enumerate(horizons) if h > MAX_SHORT_HORIZON]
        if short_cols:
            idx = [HORIZONS.index(horizons[i]) for i in short_cols]
            for k in keys:
                out[k][:, short_cols] = short[k][:, idx]
        if long_cols:
            extended = self.long_term(times_ns, short, [horizons[i] for i in long_cols], tz, X=X)
            for k in keys:
                out[k][:, long_cols] = extended[k]
        for k in keys:
            out[k] = _clamp(out[k])
        # Clamping can push a value past a band edge; keep the band around the value.
        out["lower_80"] = np.minimum(out["lower_80"], out["value"])
        out["upper_80"] = np.maximum(out["upper_80"], out["value"])
        out["lower_95"] = np.minimum(out["lower_95"], out["lower_80"])
        out["upper_95"] = np.maximum(out["upper_95"], out["upper_80"])
        return out

    def feature_contributions(self, X: np.ndarray, horizon: int) -> list[list[dict]]:
        """Top features by |contribution| to the predicted change at `horizon` (<= 120), per row."""
        j = HORIZONS.index(horizon)
        extra = self.model.trend_contributions(X, j)
        names = self.features.names() + list(extra)
        contrib = self.model.contributions(X, j)[:, : len(self.features.names())]
        if extra:
            contrib = np.column_stack([contrib, *extra.values()])
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :TOP_FEATURES]
        top = np.take_along_axis(contrib, order, axis=1).tolist()
        return [
            [{"feature": names[i], "contribution": round(v, 2)} for i, v in zip(idx, vals) if v != 0]
            for idx, vals in zip(order.tolist(), top)
        ]

    # ----- serving -----
    def predict(
        self,
        readings: pd.DataFrame,
        *,
        as_of: pd.Timestamp | None = None,
        horizons: list[int] | None = None,
        tz: str | None = None,
        treatments=None,
    ) -> Forecast:
        """Forecast from the readings at or before `as_of` (default: the last reading); a release-3
        model also reads `treatments` recorded at or before that reading."""
        return self.predict_many([(readings, as_of)], horizons=horizons, tz=tz, errors="raise",
                                 treatments=treatments)[0]

    def predict_many(
        self,
        items: list[tuple[pd.DataFrame, pd.Timestamp | None]],
        *,
        horizons: list[int] | None = None,
        tz: str | None = None,
        errors: str = "return",
        treatments=None,
    ) -> list[Forecast | ForecastInputError]:
        """Batch forecasts: one vectorised model call for all items.

        With errors="return", an item whose readings cannot support a forecast yields its
        ForecastInputError in place of a Forecast; with errors="raise" the first one is raised.
        """
        horizons = _check_horizons(horizons)
        windows: list[InputWindow | ForecastInputError] = []
        arrays_of: dict[int, tuple] = {}  # a batch often repeats one person's readings frame
        for readings, as_of in items:
            try:
                key = id(readings)
                if key not in arrays_of:
                    arrays_of[key] = reading_arrays(readings)
                windows.append(input_window(readings, as_of, arrays=arrays_of[key]))
            except ForecastInputError as exc:
                if errors == "raise":
                    raise
                windows.append(exc)
        return self.forecast_windows(windows, horizons=horizons, tz=tz, treatments=treatments)

    def forecast_windows(
        self, windows: list[InputWindow | ForecastInputError], *, horizons: list[int], tz: str | None = None,
        treatments=None,
    ) -> list[Forecast | ForecastInputError]:
        """A Forecast per InputWindow (an error in the list stays in its place): one vectorised
        model call for all of them. The serving fast path calls this with windows it built from
        arrays (window_from_arrays)."""
        tz = tz or self.tz
        good = [w for w in windows if isinstance(w, InputWindow)]
        offsets = [pd.Timedelta(minutes=h) for h in horizons]
        results: list = []
        if good:
            times_ns = np.array([w.end_ns for w in good], dtype=np.int64)
            X = self.build_features(
                np.stack([w.values for w in good]),
                np.stack([w.interpolated for w in good]),
                np.stack([w.at_limit for w in good]),
                times_ns,
                tz,
                far=max(horizons) > MAX_SHORT_HORIZON,
                treatments=treatments,
            )
            matrix = self.forecast_matrix(X, times_ns, horizons, tz)
            short_requested = [h for h in horizons if h <= MAX_SHORT_HORIZON] or [MAX_SHORT_HORIZON]
            explain_h = min(short_requested, key=lambda h: (abs(h - 60), h))
            top = self.feature_contributions(X, explain_h)
        keys = ("value", "lower_80", "upper_80", "lower_95", "upper_95")
        k = 0
        for w in windows:
            if not isinstance(w, InputWindow):
                results.append(w)
                continue
            end = w.end
            rows = {key: matrix[key][k].tolist() for key in keys}  # Python floats, rounded below
            points = [
                {
                    "horizon_min": h,
                    "time": end + offsets[c],
                    **{key: round(rows[key][c], 1) for key in keys},
                }
                for c, h in enumerate(horizons)
            ]
            results.append(
                Forecast(
                    as_of=end,
                    points=points,
                    top_features=top[k],
                    window_start=w.start,
                    window_end=end,
                    n_readings=w.n_readings,
                    gaps_in_window=w.gaps,
                    method=self.method,
                )
            )
            k += 1
        return results

    # ----- storage -----
    def metadata(self) -> dict:
        import sklearn
        import xgboost

        return {
            "algorithm": self.algorithm,
            "libraries": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "pandas": pd.__version__,
                "sklearn": sklearn.__version__,
                "xgboost": xgboost.__version__,
            },
            "feature_schema": self.features.schema(),
            "features": self.features.names(),
            "hyperparameters": self.hyperparameters,
            "candidates": [c.name for c in self.model.candidates],
            "tz": self.tz,
            "info": self.info,
        }

    def to_files(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        candidates = []
        for cand in self.model.candidates:
            files.update(cand.to_files(cand.name))
            candidates.append({"name": cand.name, "params": jsonable(cand.params())})
        manifest = {
            "format_version": FILE_FORMAT_VERSION,
            "kind": "glucose_forecaster",
            "algorithm": self.algorithm,
            "hyperparameters": jsonable(self.hyperparameters),
            "feature_schema": self.features.schema(),
            "candidates": candidates,
            "blend_weights": np.asarray(self.model.weights).tolist(),
            "conformal": self.conformal.to_dict(),
            "profile": self.profile.to_dict() if self.profile is not None else None,
            "far_weights": (
                {str(h): [float(w) for w in ws] for h, ws in self.far_weights.items()} if self.far_weights else None
            ),
            "tz": self.tz,
            "info": jsonable(self.info),
            "metadata": jsonable(self.metadata()),
        }
        files[MANIFEST] = json.dumps(manifest, separators=(",", ":")).encode()
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> "GlucoseForecaster":
        if MANIFEST not in files:
            raise ValueError(f"stored model lacks {MANIFEST}")
        manifest = json.loads(files[MANIFEST])
        if manifest.get("format_version") != FILE_FORMAT_VERSION:
            raise ValueError(f"stored model format {manifest.get('format_version')} is not supported")
        # The builder of the model's own schema, or FeatureSchemaMismatch (serving falls back).
        features = builder_for(manifest["feature_schema"])
        candidates: list[Candidate] = [
            candidate_from_files(c["name"], files, c["params"]) for c in manifest["candidates"]
        ]
        blend = BlendForecaster(candidates, np.asarray(manifest["blend_weights"], dtype=float))
        profile = TimeOfDayProfile.from_dict(manifest["profile"]) if manifest.get("profile") else None
        forecaster = cls(
            blend,
            ConformalIntervals.from_dict(manifest["conformal"]),
            profile,
            algorithm=manifest["algorithm"],
            hyperparameters=manifest.get("hyperparameters", {}),
            features=features,
            tz=manifest.get("tz", "UTC"),
            info=manifest.get("info", {}),
        )
        far = manifest.get("far_weights")
        forecaster.far_weights = {int(h): (float(w[0]), float(w[1])) for h, w in far.items()} if far else None
        return forecaster


def jsonable(value):
    """Round-trip through JSON with numpy scalars/arrays converted."""

    def default(o):
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, pd.Timestamp):
            return o.isoformat()
        raise TypeError(f"not JSON-able: {type(o).__name__}")

    return json.loads(json.dumps(value, default=default))


# Population bands for the untrained baseline: half-widths in log space, ln(actual / AR2 forecast),
# by horizon (minutes), for the central 80% and 95% of AR2's errors; linear in between, flat after
# the last point. Measured once on pooled AR2 errors of the Broll 2021 data (5 people with type 2
# diabetes, every reading as an origin); people with type 1 diabetes vary more, so these bands
# are a starting point until the person's own model (with calibrated bands) exists.
BASELINE_HALF_WIDTH_HORIZONS = (5, 15, 30, 60, 90, 120, 180, 240, 360)
BASELINE_HALF_WIDTH_LOG = {
    "80": (0.019, 0.059, 0.114, 0.206, 0.268, 0.315, 0.360, 0.380, 0.401),
    "95": (0.040, 0.118, 0.229, 0.373, 0.462, 0.522, 0.556, 0.579, 0.579),
}


class BaselineForecaster(GlucoseForecaster):
    """AR2 with population bands widening with the horizon; needs no training, same API."""

    method = "ar2_baseline"

    def __init__(self, tz: str = "UTC"):
        super().__init__(
            BlendForecaster([AR2Forecaster()], np.ones((len(HORIZONS), 1))),
            ConformalIntervals(normalized=False),
            None,
            algorithm="ar2_baseline",
            hyperparameters={
                "half_width_horizons": list(BASELINE_HALF_WIDTH_HORIZONS),
                "half_width_log": {k: list(v) for k, v in BASELINE_HALF_WIDTH_LOG.items()},
            },
            tz=tz,
        )

    def _bands(self, value: np.ndarray, horizons: list[int]) -> dict[str, np.ndarray]:
        safe = np.clip(value, CLAMP_LOW, CLAMP_HIGH)
        out = {"value": value}
        for tag, table in BASELINE_HALF_WIDTH_LOG.items():
            half = np.interp(np.asarray(horizons, dtype=float), BASELINE_HALF_WIDTH_HORIZONS, table)[None, :]
            out[f"lower_{tag}"] = safe * np.exp(-half)
            out[f"upper_{tag}"] = safe * np.exp(half)
        return out

    def short_term(self, X: np.ndarray) -> dict[str, np.ndarray]:
        now = X[:, feature_names().index("glucose_now")][:, None]
        return self._bands(now + self.predict_change(X), HORIZONS)

    def forecast_matrix(self, X: np.ndarray, times_ns: np.ndarray, horizons: list[int], tz: str):
        # AR2 itself runs on past 120 minutes (it decays toward 140 mg/dL); no profile is needed.
        from mlmodels.core.estimators import ar2_path

        names = feature_names()
        now = X[:, names.index("glucose_now")]
        steps = max(horizons) // STEP_MIN
        path = ar2_path(now, now + X[:, names.index("lag_5min")], steps)
        value = path[:, [h // STEP_MIN - 1 for h in horizons]]
        out = {k: _clamp(v) for k, v in self._bands(value, horizons).items()}
        return out

    def to_files(self) -> dict[str, bytes]:
        raise TypeError("the baseline forecaster needs no storage; construct BaselineForecaster()")



