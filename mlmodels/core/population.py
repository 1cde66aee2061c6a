"""The population prior: one forecaster learned across ~400 people, served to everyone (no Django).

A personal model learns from the days of data one person has; the prior has seen the glucose
dynamics of hundreds of people (two public corpora, see `prior_data.py`) and forecasts from the
same 2-hour window, in a way that does not depend on who the person is, so it can serve a person
from their first hours and give every personal model something to start from.

Why it transfers between people: everything it sees is normalised per window. Inputs are the
window in log space relative to the current value (a rise from 80 to 100 looks like one from
160 to 200), plus the current level, the time of day and the window's recent variability as
separate inputs; outputs are log changes from the current value. A steady, normoglycemic person
and a person with type 1 diabetes then differ in the variability inputs, not in the scale of
everything.

Two parts (see `metadata.json` of the shipped artifact for what was trained and measured):
- short horizons (5..120 min): a neural sequence model (a GRU run by ONNX Runtime, forecasting
  the median and the 2.5/10/90/97.5% quantiles of the log change), or another candidate
  (XGBoost / linear) when the metadata says so; the training command chooses on validation
  people and reports all of them on held-out people.
- far horizons (125 min .. 24 h): per-horizon linear models in log space on the window's level,
  the time of day of the target and, when the caller passes the person's `TimeOfDayProfile`,
  the person's typical value at that clock time. Coefficients are learned at a few horizons and
  interpolated between them.

Bands are split-conformal over PEOPLE, calibrated on people whom no model was fitted on, each
person weighing the same. Short horizons of the GRU: conformalised quantile regression — the
network's own quantiles (which widen with the window's variability and level) moved per side
and horizon by how far calibration outcomes fell beyond them. Other candidates: log residuals
divided by a difficulty scale (the window's variability) fitted on validation people. Far
horizons: log residuals divided by the profile's q90/q10 spread. So an 80% band covers about
80% of a new person's outcomes on average over people; per person it varies (bench/population.py
reports the spread).

Besides forecasts it offers `window_summary` (the GRU's last state: a learned, person-independent
description of the window that a personal model can use as inputs) and `horizons_for` (where
each variant beat the time-of-day median on validation people).

The shipped artifact (`mlmodels/core/prior/`) is verified before use: SHA256SUMS lists every
file's digest and `prior_pin.py` pins SHA256SUMS itself, so a changed file is refused with
PriorIntegrityError rather than served. Runtime: numpy + onnxruntime (+ xgboost for that kind);
never torch.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np

from mlmodels.core.features import WINDOW_STEPS, _local_clock
from mlmodels.core.preparation import STEP_MIN

PRIOR_DIR = Path(__file__).resolve().parent / "prior"
METADATA = "metadata.json"
SUMS = "SHA256SUMS"
SHORT_HORIZONS = list(range(5, 121, 5))
FAR_HORIZONS = list(range(125, 1441, 5))
LOG_REF = float(np.log(140.0))
INPUT_LOW, INPUT_HIGH = 39.0, 401.0  # the sensors' reporting limits in the corpora
CLAMP_LOW, CLAMP_HIGH = 40.0, 400.0
SCALE_FLOOR = 0.005  # log units per 5 min: below this a window counts as flat
# The sequence model sees log changes divided by one fixed scale (about a typical 5-minute log
# change x 4). Dividing each window by its own variability instead was tried and learned slower
# and worse (after two epochs, MAE at 30/60 min on Weinstock validation people 15.7/26.9 against
# 15.3/26.4 mg/dL with the fixed scale).
DEFAULT_SEQ_SCALE = 0.02
LEVELS = ("80", "95")
GLOBAL_INPUTS = [
    "level_log",  # log(glucose_now / 140)
    "tod_sin",
    "tod_cos",
    "log_vol_120",  # log of the RMS 5-minute log change over the window
    "log_vol_30",
    "window_log_std",
    "window_log_max_rel",
    "window_log_min_rel",
]
FAR_INPUTS_BASE = ["one", "level_log", "window_mean_rel", "window_log_std", "short_120_rel",
                   "target_tod_sin", "target_tod_cos"]
FAR_INPUTS_PROFILE = ["profile_median_rel", "profile_overall_median_rel", "profile_log_spread"]


def forecast_line(version: str) -> str:
    """'prior-1.0.1' -> 'prior-1.0': the versions whose forecasts are the same.

    The prior's version reads MAJOR.MINOR.PATCH like a personal model's: a PATCH only
    recalibrates its bands, so every PATCH of one MAJOR.MINOR line forecasts exactly alike (the
    training command refuses to ship a PATCH whose forecasts differ) and a release-2 model built
    on one of them is served on any other; a MINOR or MAJOR change is a new prior to retrain on.
    """
    name, _, number = str(version).rpartition("-") if "-" in str(version) else ("", "", str(version))
    parts = number.split(".")
    line = ".".join(parts[:2]) if len(parts) >= 3 else number
    return f"{name}-{line}" if name else line


class PriorIntegrityError(RuntimeError):
    """The prior artifact on disk does not match its pinned checksums (tampered or incomplete)."""


# ----------------------------------------------------------------------------------------------
# inputs


def prior_inputs(
    windows: np.ndarray, times_ns: np.ndarray, tz: str, *, fixed_scale: float | None = DEFAULT_SEQ_SCALE
) -> dict[str, np.ndarray]:
    """Per-window normalised inputs shared by training and serving.

    windows: (n, 25) mg/dL oldest first; times_ns: (n,) UTC ns of the last value.
    Returns 'seq' (n, 25, 2) float32: log value relative to now / (10 * scale) and the 5-minute
    log change / scale; 'glob' (n, 8) GLOBAL_INPUTS; 'now' (n,) log glucose now; 'scale' (n,)
    (`fixed_scale` for every row, or with None the window's own RMS 5-minute log change);
    'ok' (n,) bool (False where the window has a NaN; those rows hold neutral values).
    """
    windows = np.asarray(windows, dtype=np.float64)
    if windows.ndim != 2 or windows.shape[1] != WINDOW_STEPS + 1:
        raise ValueError(f"windows must have shape (n, {WINDOW_STEPS + 1}); got {windows.shape}")
    times_ns = np.asarray(times_ns, dtype=np.int64)
    if times_ns.shape != (windows.shape[0],):
        raise ValueError(f"times_ns must have shape ({windows.shape[0]},); got {times_ns.shape}")
    ok = np.isfinite(windows).all(axis=1)
    safe = np.where(ok[:, None], windows, 140.0)
    L = np.log(np.clip(safe, INPUT_LOW, INPUT_HIGH))
    now = L[:, -1]
    rel = L - now[:, None]
    diff = np.diff(L, axis=1, prepend=L[:, :1])
    vol = np.sqrt((diff[:, 1:] ** 2).mean(axis=1))
    vol30 = np.sqrt((diff[:, -6:] ** 2).mean(axis=1))
    vol_floored = np.maximum(vol, SCALE_FLOOR)
    scale = vol_floored if fixed_scale is None else np.full(len(now), float(fixed_scale))
    minutes, _ = _local_clock(times_ns, tz) if len(times_ns) else (np.zeros(0), None)
    tod = 2 * np.pi * np.asarray(minutes, dtype=float) / 1440.0
    glob = np.column_stack([
        now - LOG_REF,
        np.sin(tod),
        np.cos(tod),
        np.log(np.maximum(vol, 1e-3)),
        np.log(np.maximum(vol30, 1e-3)),
        L.std(axis=1),
        L.max(axis=1) - now,
        L.min(axis=1) - now,
    ])
    seq = np.stack([rel / (10.0 * scale[:, None]), diff / scale[:, None]], axis=-1)
    return {
        "seq": seq.astype(np.float32),
        "glob": glob,
        "now": now,
        "rel": rel[:, :-1],
        "scale": scale,
        "vol": vol_floored,
        "vol30": vol30,
        "rate15": (L[:, -1] - L[:, -4]),
        "minutes": np.asarray(minutes, dtype=float),
        "window_mean_rel": rel.mean(axis=1),
        "ok": ok,
    }


def flat_inputs(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 24 + 8) matrix for the tree and linear candidates: relative log window + globals."""
    return np.column_stack([inputs["rel"], inputs["glob"]])


def short_difficulty(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 4) columns of the short-horizon band scale: 1, variability 2 h, 30 min, |15-min change|."""
    return np.column_stack([
        np.ones(len(inputs["now"])),
        inputs["vol"] * 10.0,
        inputs["vol30"] * 10.0,
        np.abs(inputs["rate15"]) * 10.0,
    ])


def far_design(inputs: dict[str, np.ndarray], short_120_rel: np.ndarray, horizons, tz: str,
               profile=None) -> np.ndarray:
    """(n, len(horizons), k) far-horizon design; k = 7, or 10 with the person's profile."""
    n, hs = len(inputs["now"]), np.asarray(horizons, dtype=float)
    target_min = (inputs["minutes"][:, None] + hs[None, :]) % 1440.0
    tod = 2 * np.pi * target_min / 1440.0
    cols = [
        np.ones((n, len(hs))),
        np.repeat((inputs["now"] - LOG_REF)[:, None], len(hs), axis=1),
        np.repeat(inputs["window_mean_rel"][:, None], len(hs), axis=1),
        np.repeat(inputs["glob"][:, 5][:, None], len(hs), axis=1),
        np.repeat(short_120_rel[:, None], len(hs), axis=1),
        np.sin(tod),
        np.cos(tod),
    ]
    if profile is not None:
        flat = target_min.ravel()
        med = np.log(np.clip(profile.median_at(flat), INPUT_LOW, INPUT_HIGH)).reshape(target_min.shape)
        q10 = np.log(np.clip(profile.quantile_at(flat, 0.10), INPUT_LOW, INPUT_HIGH)).reshape(target_min.shape)
        q90 = np.log(np.clip(profile.quantile_at(flat, 0.90), INPUT_LOW, INPUT_HIGH)).reshape(target_min.shape)
        overall = float(np.log(np.clip(np.median(profile.quantiles[:, 4]), INPUT_LOW, INPUT_HIGH)))
        cols += [med - inputs["now"][:, None], overall - np.repeat(inputs["now"][:, None], len(hs), axis=1),
                 q90 - q10]
    return np.stack(cols, axis=-1)


def profile_spread(profile, minutes: np.ndarray, horizons) -> np.ndarray:
    """(n, len(horizons)) log(q90 / q10) of the person's profile at the target clock times."""
    target_min = (np.asarray(minutes, dtype=float)[:, None] + np.asarray(horizons, dtype=float)[None, :]) % 1440.0
    flat = target_min.ravel()
    q10 = profile.quantile_at(flat, 0.10)
    q90 = profile.quantile_at(flat, 0.90)
    spread = np.log(np.clip(q90, INPUT_LOW, INPUT_HIGH) / np.clip(q10, INPUT_LOW, INPUT_HIGH))
    return np.maximum(spread, 0.05).reshape(target_min.shape)


def interpolate_knots(knots, values: np.ndarray, horizons) -> np.ndarray:
    """Linear interpolation along the first axis of `values` (one row per knot) to `horizons`."""
    knots = np.asarray(knots, dtype=float)
    values = np.asarray(values, dtype=float)
    flat = values.reshape(len(knots), -1)
    out = np.stack([np.interp(np.asarray(horizons, dtype=float), knots, flat[:, j]) for j in range(flat.shape[1])],
                   axis=-1)
    return out.reshape((len(horizons),) + values.shape[1:])


# ----------------------------------------------------------------------------------------------
# short-horizon runners (one per candidate kind)


class _OnnxShort:
    def __init__(self, model_bytes: bytes, spec: dict):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # A forecast is one small matrix product chain: threads would cost more than they save,
        # and web workers run in parallel already.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        self.glob_mean = np.asarray(spec["glob_mean"], dtype=np.float64)
        self.glob_std = np.asarray(spec["glob_std"], dtype=np.float64)
        levels = spec.get("quantile_levels") or [0.5]
        self.median_index = levels.index(0.5)

    def __call__(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        glob = ((inputs["glob"] - self.glob_mean) / self.glob_std).astype(np.float32)
        outputs = self.session.run(None, {"seq": inputs["seq"], "glob": glob})
        out = outputs[0].astype(np.float64)
        # the GRU's last state, the network's summary of the window (older artifacts lack it)
        inputs["summary"] = outputs[1].astype(np.float64) if len(outputs) > 1 else None
        scale = inputs["scale"][:, None]
        if out.ndim == 2:  # a median-only network
            return out * scale, None
        # (n, quantile levels, horizons); sorted so crossing quantiles can never invert a band
        quantiles = np.sort(out, axis=1) * scale[:, :, None]
        return quantiles[:, self.median_index], quantiles


class _XGBoostShort:
    def __init__(self, files: dict[str, bytes], spec: dict):
        import xgboost as xgb

        self.knots = [int(h) for h in spec["knots"]]
        self.boosters = []
        for h in self.knots:
            booster = xgb.Booster(params={"nthread": 1})
            booster.load_model(bytearray(files[f"xgboost_h{h}.ubj"]))
            self.boosters.append(booster)
        self.scaled = bool(spec.get("scaled_target", False))
        # linear interpolation between the fitted horizons (0 min has change 0) as one matrix
        knots = np.array([0, *self.knots], dtype=float)
        basis = np.eye(len(knots))
        self.interpolation = np.array(
            [[np.interp(h, knots, basis[i]) for h in SHORT_HORIZONS] for i in range(len(knots))]
        )[1:]

    def __call__(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, None]:
        X = np.ascontiguousarray(flat_inputs(inputs), dtype=np.float32)
        fitted = np.column_stack([b.inplace_predict(X, validate_features=False) for b in self.boosters])
        if self.scaled:
            fitted = fitted * inputs["scale"][:, None]
        return fitted @ self.interpolation, None


class _LinearShort:
    def __init__(self, spec: dict):
        self.mean = np.asarray(spec["x_mean"], dtype=float)
        self.std = np.asarray(spec["x_std"], dtype=float)
        self.coef = np.asarray(spec["coef"], dtype=float)  # (24, k)
        self.intercept = np.asarray(spec["intercept"], dtype=float)

    def __call__(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, None]:
        z = (flat_inputs(inputs) - self.mean) / self.std
        return z @ self.coef.T + self.intercept, None


# ----------------------------------------------------------------------------------------------
# the prior


class PopulationPrior:
    """Forecasts (mg/dL) at `horizons` from 2-hour windows, the same for every person."""

    def __init__(self, files: dict[str, bytes]):
        if METADATA not in files:
            raise PriorIntegrityError(f"prior artifact lacks {METADATA}")
        self.files_digest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        meta = json.loads(files[METADATA])
        self.metadata = meta
        self.version: str = meta["version"]
        self.kind: str = meta["short"]["kind"]
        short = meta["short"]
        self.fixed_scale = short.get("fixed_scale", DEFAULT_SEQ_SCALE)
        if self.kind == "onnx":
            self._short = _OnnxShort(files[short["file"]], short)
        elif self.kind == "xgboost":
            self._short = _XGBoostShort(files, short)
        elif self.kind == "linear":
            self._short = _LinearShort(short)
        else:
            raise PriorIntegrityError(f"unknown prior kind {self.kind!r}")
        bands = meta["short_bands"]
        self.band_method = bands.get("method_key", "normalized")
        if self.band_method == "cqr":
            # conformalised quantile regression: the network's own quantiles, widened (or
            # narrowed) per horizon by corrections measured on calibration people
            self.cqr_levels = {tag: [int(i) for i in idx] for tag, idx in bands["level_indices"].items()}
            self.cqr_corrections = {k: np.asarray(v, dtype=float) for k, v in bands["corrections"].items()}
        else:
            self.short_bands = {k: np.asarray(v, dtype=float) for k, v in bands["quantiles"].items()}
            self.short_difficulty = np.asarray(bands["difficulty_coef"], dtype=float)
        far = meta.get("far")
        self.far = far
        self.far_horizons: list[int] = list(FAR_HORIZONS) if far else []
        self.horizons: list[int] = SHORT_HORIZONS + self.far_horizons
        # Far horizons the prior forecasts better than the person's own time-of-day median on
        # validation people, with and without the person's profile (the rest are still
        # computed, but a caller should fall back to the profile there; see horizons_for).
        self.far_beats_median = {"profile": [], "window": []}
        report = meta.get("training", {}).get("far_validation_mae", {})
        for mode in ("profile", "window"):
            limit = 0
            for h in sorted(report, key=int):
                row = report[h]
                if row.get(mode) is None or row.get("tod_median") is None or row[mode] >= row["tod_median"]:
                    break
                limit = int(h)
            self.far_beats_median[mode] = [h for h in self.far_horizons if h <= limit]
        if far:
            # per-horizon coefficients and band quantiles, interpolated between knots once
            self._far_coef = {
                mode: interpolate_knots(far["knots"], np.asarray(far[mode]["coef"], dtype=float), self.far_horizons)
                for mode in ("window", "profile")
            }
            self._far_quantiles = {
                mode: {k: np.interp(self.far_horizons, far["knots"], v) for k, v in far[mode]["band_quantiles"].items()}
                for mode in ("window", "profile")
            }

    def horizons_for(self, *, with_profile: bool) -> list[int]:
        """Horizons where the prior earned its place: 5..120 min always; far ones (to 24 h) only
        up to the last knot where it beat the time-of-day median on validation people."""
        return SHORT_HORIZONS + self.far_beats_median["profile" if with_profile else "window"]

    # ----- loading -----
    @classmethod
    def from_directory(cls, directory: Path, *, pinned_sums_sha256: str | None = None) -> "PopulationPrior":
        """Load and verify an artifact directory (SHA256SUMS, optionally pinned itself)."""
        directory = Path(directory)
        sums_path = directory / SUMS
        if not sums_path.is_file():
            raise PriorIntegrityError(f"prior artifact at {directory.name}/ lacks {SUMS}")
        sums_bytes = sums_path.read_bytes()
        if pinned_sums_sha256 is not None and hashlib.sha256(sums_bytes).hexdigest() != pinned_sums_sha256:
            raise PriorIntegrityError(
                f"{SUMS} of the prior does not match the digest pinned in the code; refusing to load it "
                "(retrain with `python -m mlmodels.core.prior_training --ship`, which updates the pin)"
            )
        files: dict[str, bytes] = {}
        for line in sums_bytes.decode().splitlines():
            if not line.strip():
                continue
            digest, name = line.split(maxsplit=1)
            name = name.lstrip("*")
            if "/" in name or name.startswith("."):
                raise PriorIntegrityError(f"{SUMS} names an unexpected path {name!r}")
            path = directory / name
            if not path.is_file():
                raise PriorIntegrityError(f"prior file {name} listed in {SUMS} is missing")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                raise PriorIntegrityError(
                    f"prior file {name} does not match its SHA-256 in {SUMS}: the artifact was changed "
                    "after training; refusing to load it"
                )
            files[name] = data
        return cls(files)

    # ----- numeric core -----
    def _short_log_change(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """(n, 24) median log change; the network's quantiles (if any) go to inputs['quantiles']."""
        n = len(inputs["now"])
        if n == 0:
            inputs["quantiles"] = None
            return np.zeros((0, len(SHORT_HORIZONS)))
        median, quantiles = self._short(inputs)
        inputs["quantiles"] = quantiles
        return median

    def _far_log_change(self, inputs, short_log, tz: str, profile) -> np.ndarray:
        coef = self._far_coef["profile" if profile is not None else "window"]  # (H, k)
        design = far_design(inputs, short_log[:, -1], self.far_horizons, tz, profile)
        return np.einsum("nhk,hk->nh", design, coef)

    def log_change(self, windows, times_ns, tz: str, *, profile=None) -> tuple[np.ndarray, dict]:
        """(n, len(horizons)) forecast log(glucose_t+h / glucose_t), plus the inputs used."""
        inputs = prior_inputs(windows, times_ns, tz, fixed_scale=self.fixed_scale)
        short = self._short_log_change(inputs)
        inputs["short_log"] = short
        parts = [short]
        if self.far_horizons:
            parts.append(self._far_log_change(inputs, short, tz, profile))
        out = np.concatenate(parts, axis=1)
        out[~inputs["ok"]] = np.nan
        return out, inputs

    def window_summary(self, windows: np.ndarray, times_ns: np.ndarray, tz: str) -> np.ndarray | None:
        """(n, k) the sequence model's learned summary of each window (its GRU's last state).

        Person-independent features a personal model may learn from beside the prior's
        forecasts; None for a prior without a sequence model. NaN rows for NaN windows.
        """
        inputs = prior_inputs(windows, times_ns, tz, fixed_scale=self.fixed_scale)
        if len(inputs["now"]) == 0 or self.kind != "onnx":
            size = self.metadata["short"].get("summary_size")
            return np.zeros((0, size)) if (size and self.kind == "onnx") else None
        self._short_log_change(inputs)
        summary = inputs.get("summary")
        if summary is None:
            return None
        summary = summary.copy()
        summary[~inputs["ok"]] = np.nan
        return summary

    def predict(self, windows: np.ndarray, times_ns: np.ndarray, tz: str, *, profile=None) -> np.ndarray:
        """(n, len(horizons)) forecast glucose in mg/dL; rows whose window has a NaN are NaN.

        `profile`: the person's TimeOfDayProfile (optional) — far horizons then use the person's
        typical value at the target clock time, which is what makes them better than that median.
        """
        change, inputs = self.log_change(windows, times_ns, tz, profile=profile)
        return np.clip(np.exp(inputs["now"][:, None] + change), CLAMP_LOW, CLAMP_HIGH)

    def _band_log_edges(self, inputs, short_log: np.ndarray, profile) -> dict[str, np.ndarray]:
        """Band edges as log offsets from the point forecast, (n, len(horizons)) each."""
        if self.band_method == "cqr":
            q = inputs["quantiles"]
            edges = {}
            for tag, (lo, hi) in self.cqr_levels.items():
                edges[f"lower_{tag}"] = q[:, lo] - self.cqr_corrections[f"lower_{tag}"][None, :] - short_log
                edges[f"upper_{tag}"] = q[:, hi] + self.cqr_corrections[f"upper_{tag}"][None, :] - short_log
        else:
            scale = short_difficulty(inputs) @ self.short_difficulty.T  # (n, 24)
            edges = {k: q[None, :] * scale for k, q in self.short_bands.items()}
        if self.far_horizons:
            quantiles = self._far_quantiles["profile" if profile is not None else "window"]
            if profile is not None:
                far_scale = profile_spread(profile, inputs["minutes"], self.far_horizons)
            else:
                far_scale = np.ones((len(inputs["now"]), len(self.far_horizons)))
            for k in edges:
                edges[k] = np.concatenate([edges[k], quantiles[k][None, :] * far_scale], axis=1)
        return edges

    def band_offsets(self, windows, times_ns, tz: str, *, profile=None) -> dict[str, np.ndarray]:
        """Population-calibrated band edges as mg/dL offsets from `predict`'s value.

        Keys lower_80, upper_80, lower_95, upper_95, each (n, len(horizons)); lower <= 0 <= upper.
        Conformal over calibration people the model never saw (see the module docstring): the
        network's quantiles corrected per horizon (short horizons), or log residuals scaled by
        the profile's q90/q10 spread (far horizons, with a profile; unscaled without one).
        """
        out = self.forecast(windows, times_ns, tz, profile=profile)
        return {k: out[k] - out["value"] for k in ("lower_80", "upper_80", "lower_95", "upper_95")}

    def forecast(self, windows, times_ns, tz: str, *, profile=None) -> dict[str, np.ndarray]:
        """value, lower_80, upper_80, lower_95, upper_95 in mg/dL, each (n, len(horizons)), clamped."""
        change, inputs = self.log_change(windows, times_ns, tz, profile=profile)
        log_value = inputs["now"][:, None] + change
        out = {"value": np.clip(np.exp(log_value), CLAMP_LOW, CLAMP_HIGH)}
        for key, edge in self._band_log_edges(inputs, inputs["short_log"], profile).items():
            out[key] = np.clip(np.exp(log_value + edge), CLAMP_LOW, CLAMP_HIGH)
        for tag in LEVELS:
            out[f"lower_{tag}"] = np.minimum(out[f"lower_{tag}"], out["value"])
            out[f"upper_{tag}"] = np.maximum(out[f"upper_{tag}"], out["value"])
        out["lower_95"] = np.minimum(out["lower_95"], out["lower_80"])
        out["upper_95"] = np.maximum(out["upper_95"], out["upper_80"])
        return out

    def describe(self) -> dict:
        """What the prior is, for logs and model records: version, kind, horizons, digests."""
        return {
            "version": self.version,
            "kind": self.kind,
            "horizons": [self.horizons[0], self.horizons[-1]],
            "files_sha256": self.files_digest,
            "trained": self.metadata.get("training", {}).get("command"),
        }


_shipped: PopulationPrior | None = None
_shipped_lock = threading.Lock()


def shipped_prior() -> PopulationPrior:
    """The prior shipped in the repository, loaded and verified once per process."""
    global _shipped
    if _shipped is None:
        with _shipped_lock:
            if _shipped is None:
                from mlmodels.core.prior_pin import SHA256SUMS_DIGEST

                _shipped = PopulationPrior.from_directory(PRIOR_DIR, pinned_sums_sha256=SHA256SUMS_DIGEST)
    return _shipped


def write_artifact(directory: Path, files: dict[str, bytes]) -> str:
    """Write `files` and their SHA256SUMS into `directory`; return the SHA-256 of SHA256SUMS."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_file():
            old.unlink()
    lines = []
    for name in sorted(files):
        (directory / name).write_bytes(files[name])
        lines.append(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n")
    sums = "".join(lines).encode()
    (directory / SUMS).write_bytes(sums)
    return hashlib.sha256(sums).hexdigest()


__all__ = ["PopulationPrior", "PriorIntegrityError", "shipped_prior", "prior_inputs", "STEP_MIN"]
