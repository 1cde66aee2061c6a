"""Train the population prior offline, from the public corpora (no Django; needs the [train] extra).

    pip install -e '.[train]'            # torch (CPU wheel) and onnx, for this command only
    OMP_NUM_THREADS=2 python -m mlmodels.core.prior_training [--ship] [--seed 0] [--threads 2]

Steps (every choice on validation people; the held-out test people only appear in the last
printout, after everything is fixed):
1. people: the fixed split of `prior_data.split_subjects` (20% test, 10% calibration, 10%
   validation, 60% fit, per corpus, by a hash of the subject id); Broll is never read here.
2. samples: every complete 2-hour window with a real reading at its end (every 2nd one for
   Weinstock's fit people, to keep training short), targets the log change to 5..120 minutes.
   Each corpus weighs the same in every loss, so the 12-day type 1 corpus does not drown the
   2-day mostly-normoglycemic one.
3. short-horizon candidates, all on the same inputs (`population.prior_inputs`):
   linear (median regression), XGBoost (absolute error, boosters at 15/30/60/90/120 min
   interpolated between, early stopping on validation people), a GRU sequence model (torch,
   64 units, 8 epochs; pinball loss for 5 quantiles of the log change plus the median's
   absolute error; exported to ONNX) and that GRU quantized to int8 (dynamic quantization of
   ONNX Runtime), kept only if its validation error stays within 1% AND a window's forecast
   does not depend on the other windows of its batch (see BATCH_TOLERANCE).
   The winner is the one with the lowest validation error relative to persistence, averaged over
   the two corpora and the 30- and 60-minute horizons.
4. bands, on calibration people, each PERSON weighing the same: for the GRU, conformalised
   quantile regression on its own quantiles; for the others, quantiles of the log residual
   divided by a difficulty scale fitted on validation people.
5. far horizons (125 min .. 24 h): linear models in log space at knot horizons (least absolute
   deviations by iteratively reweighted least squares), trained on fit + validation people with
   a time-of-day profile from the first half of each person's days and origins in the second
   half; band quantiles on calibration people.
6. artifacts: one per candidate under var/prior-candidates/<name>/ (the bench scores them all);
   with --ship the chosen one replaces mlmodels/core/prior/ and its pin in prior_pin.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlmodels.core.population import (
    DEFAULT_SEQ_SCALE,
    FAR_HORIZONS,
    FAR_INPUTS_BASE,
    FAR_INPUTS_PROFILE,
    GLOBAL_INPUTS,
    INPUT_HIGH,
    INPUT_LOW,
    METADATA,
    PRIOR_DIR,
    SHORT_HORIZONS,
    PopulationPrior,
    far_design,
    forecast_line,
    flat_inputs,
    prior_inputs,
    profile_spread,
    short_difficulty,
    write_artifact,
)
from mlmodels.core.prior_data import (
    ROLE_FRACTIONS,
    SPLIT_SALT,
    PersonGrid,
    default_data_dir,
    load_grids,
)
from mlmodels.core.profile import TimeOfDayProfile

PRIOR_VERSION = "prior-1.0.1"
REPO = Path(__file__).resolve().parents[2]
CANDIDATE_DIR = REPO / "var" / "prior-candidates"
PIN_FILE = Path(__file__).resolve().parent / "prior_pin.py"
TZ = "UTC"  # the corpora hold local clock times, read as UTC
XGB_KNOTS = (15, 30, 60, 90, 120)
FAR_KNOTS = (125, 150, 180, 240, 300, 360, 480, 600, 720, 900, 1080, 1260, 1440)
FAR_STRIDE = 6  # far-horizon origins every 30 minutes
J30, J60 = SHORT_HORIZONS.index(30), SHORT_HORIZONS.index(60)
QUANT_TOLERANCE = 0.01
# Dynamic int8 quantization picks the activations' scale per call from the whole batch, so one
# window's forecast would depend on the other windows (other people's, in a batch) it is
# computed with. A served forecast must not: int8 is kept only if that effect stays below this
# (log units, ~0.001% of the value).
BATCH_TOLERANCE = 1e-5
# The GRU forecasts these quantiles of the log change at every horizon (pinball loss); the median
# is the point forecast, the outer pairs are the 95% and 80% bands before conformal correction.
QUANTILE_LEVELS = (0.025, 0.10, 0.50, 0.90, 0.975)
# Band guard for low glucose (see fit_cqr_bands): the share of calibration outcomes below
# LOW_GLUCOSE the lower edge of the 80% (95%) band must cover, at horizons with enough of them.
LOW_GLUCOSE = 70.0
LOW_GUARD = {"80": 0.75, "95": 0.90}
LOW_GUARD_MIN_OUTCOMES = 30


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# samples


class Samples:
    """Short-horizon samples of one role: inputs, log-change targets, absolute outcomes."""

    def __init__(self, parts: list[dict]):
        self.corpus = np.concatenate([p["corpus"] for p in parts])
        self.person = np.concatenate([p["person"] for p in parts])
        self.windows = np.vstack([p["windows"] for p in parts])
        self.times_ns = np.concatenate([p["times_ns"] for p in parts])
        self.actual = np.vstack([p["actual"] for p in parts])
        self.inputs = prior_inputs(self.windows, self.times_ns, TZ)
        self.target = np.log(np.clip(self.actual, INPUT_LOW, INPUT_HIGH)) - self.inputs["now"][:, None]
        # each corpus weighs the same overall; within a corpus each sample the same
        self.weight = np.zeros(len(self.corpus))
        for c in np.unique(self.corpus):
            m = self.corpus == c
            self.weight[m] = 1.0 / m.sum()
        self.weight *= len(self.weight) / self.weight.sum()
        # person weights (each person the same in band quantiles)
        self.person_weight = np.zeros(len(self.person))
        for p in np.unique(self.person):
            m = self.person == p
            self.person_weight[m] = 1.0 / m.sum()

    def __len__(self) -> int:
        return len(self.corpus)

    def subset(self, corpus: str) -> np.ndarray:
        return self.corpus == corpus


def person_samples(p: PersonGrid, *, stride: int, require_all: bool, observed_only: bool) -> dict:
    future = p.future(SHORT_HORIZONS, observed_only=observed_only)
    ok = np.isfinite(p.windows).all(axis=1) & p.observed
    ok &= np.isfinite(future).all(axis=1) if require_all else np.isfinite(future).any(axis=1)
    idx = np.flatnonzero(ok)[::stride]
    return {
        "corpus": np.full(len(idx), p.corpus),
        "person": np.full(len(idx), f"{p.corpus}:{p.subject}"),
        "windows": p.windows[idx],
        "times_ns": p.times_ns[idx],
        "actual": future[idx],
    }


def build_samples(grids, role: str, stride: dict[str, int]) -> Samples:
    parts = []
    for corpus, people in grids.items():
        for r, p in people:
            if r != role:
                continue
            parts.append(person_samples(p, stride=stride[corpus], require_all=(role == "fit"),
                                        observed_only=(role != "fit")))
    return Samples(parts)


# ----------------------------------------------------------------------------------------------
# scoring


def mae_at(samples: Samples, log_change: np.ndarray, mask: np.ndarray, j: int) -> float:
    value = np.exp(samples.inputs["now"][mask] + log_change[mask, j])
    return float(np.nanmean(np.abs(value - samples.actual[mask, j])))


def score(samples: Samples, log_change: np.ndarray) -> dict:
    """MAE at 30/60 per corpus, and the choice criterion: mean ratio to persistence."""
    out, ratios = {}, []
    zero = np.zeros_like(log_change)
    for corpus in np.unique(samples.corpus):
        m = samples.subset(corpus)
        for j, h in ((J30, 30), (J60, 60)):
            model, persist = mae_at(samples, log_change, m, j), mae_at(samples, zero, m, j)
            out[f"{corpus}_mae_{h}"] = round(model, 3)
            out[f"{corpus}_persistence_mae_{h}"] = round(persist, 3)
            ratios.append(model / persist)
    out["ratio_to_persistence"] = round(float(np.mean(ratios)), 4)
    return out


def fmt_score(s: dict) -> str:
    parts = []
    for corpus in ("weinstock2016", "colas2019"):
        if f"{corpus}_mae_30" in s:
            parts.append(f"{corpus} MAE 30/60 {s[f'{corpus}_mae_30']:.2f}/{s[f'{corpus}_mae_60']:.2f} "
                         f"(persistence {s[f'{corpus}_persistence_mae_30']:.2f}/{s[f'{corpus}_persistence_mae_60']:.2f})")
    return "; ".join(parts) + f"; ratio to persistence {s['ratio_to_persistence']:.3f}"


# ----------------------------------------------------------------------------------------------
# candidates


def train_linear(fit: Samples, val: Samples) -> dict:
    """Linear in the normalised inputs, one per horizon, by least absolute deviations (IRLS).

    Squared error was tried first: the heavy tails of glucose changes (meals, corrections) pull
    a least-squares fit toward them and it barely beat persistence (ratio 0.946 on validation).
    """
    X = flat_inputs(fit.inputs)
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-9
    Z = np.column_stack([np.ones(len(X)), (X - mean) / std])
    coef = np.zeros((len(SHORT_HORIZONS), Z.shape[1]))
    for j in range(len(SHORT_HORIZONS)):
        coef[j] = lad_fit(Z, fit.target[:, j], fit.weight, iterations=15)
    Zv = np.column_stack([np.ones(len(val)), (flat_inputs(val.inputs) - mean) / std])
    log(f"  linear (least absolute deviations): {fmt_score(score(val, Zv @ coef.T))}")
    spec = {"kind": "linear", "loss": "least absolute deviations", "x_mean": mean.tolist(), "x_std": std.tolist(),
            "coef": coef[:, 1:].tolist(), "intercept": coef[:, 0].tolist(), "fixed_scale": DEFAULT_SEQ_SCALE}
    return {"spec": spec, "files": {}}


def train_xgboost(fit: Samples, val: Samples, seed: int, threads: int) -> dict:
    import xgboost as xgb

    X = flat_inputs(fit.inputs).astype(np.float32)
    Xv = flat_inputs(val.inputs).astype(np.float32)
    params = {
        "tree_method": "hist", "max_bin": 64, "objective": "reg:absoluteerror", "max_depth": 6,
        "eta": 0.1, "min_child_weight": 50, "subsample": 0.8, "colsample_bytree": 0.8,
        "nthread": threads, "seed": seed, "verbosity": 0,
    }
    files, rounds = {}, {}
    for h in XGB_KNOTS:
        j = SHORT_HORIZONS.index(h)
        dtrain = xgb.DMatrix(X, label=fit.target[:, j], weight=fit.weight, nthread=threads)
        ok = np.isfinite(val.target[:, j])
        dval = xgb.DMatrix(Xv[ok], label=val.target[ok, j], weight=val.weight[ok], nthread=threads)
        booster = xgb.train(params, dtrain, num_boost_round=600, evals=[(dval, "val")],
                            early_stopping_rounds=30, verbose_eval=False)
        best = int(booster.best_iteration) + 1
        booster = booster[:best]
        rounds[h] = best
        files[f"xgboost_h{h}.ubj"] = bytes(booster.save_raw("ubj"))
        log(f"  xgboost {h} min: {best} rounds")
    spec = {"kind": "xgboost", "knots": list(XGB_KNOTS), "rounds": rounds, "params": params,
            "fixed_scale": DEFAULT_SEQ_SCALE}
    return {"spec": spec, "files": files}


def train_gru(fit: Samples, val: Samples, seed: int, epochs: int, hidden: int, median_weight: float, *,
              level_weighted: bool = False, layers: int = 1, head: int = 64, lr: float = 3e-3) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    np.random.seed(seed)

    class PriorGRU(nn.Module):
        """GRU over the 25 normalised steps; its last state with the globals -> 24 log changes."""

        def __init__(self, hidden: int, n_glob: int):
            super().__init__()
            self.gru = nn.GRU(2, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Sequential(
                nn.Linear(hidden + n_glob, head), nn.ReLU(), nn.Linear(head, len(QUANTILE_LEVELS) * len(SHORT_HORIZONS))
            )

        def forward(self, seq, glob):
            _, state = self.gru(seq)
            out = self.head(torch.cat([state[-1], glob], dim=1))
            return out.view(-1, len(QUANTILE_LEVELS), len(SHORT_HORIZONS))

    scale = DEFAULT_SEQ_SCALE
    glob_mean = fit.inputs["glob"].mean(axis=0)
    glob_std = fit.inputs["glob"].std(axis=0) + 1e-6

    def tensors(s: Samples):
        g = ((s.inputs["glob"] - glob_mean) / glob_std).astype(np.float32)
        return torch.from_numpy(s.inputs["seq"]), torch.from_numpy(g)

    seq, glob = tensors(fit)
    target = torch.from_numpy((fit.target / scale).astype(np.float32))
    sample_weight = fit.weight
    if level_weighted:
        # the loss is in log units, people are scored in mg/dL: an error of e log units at
        # glucose g costs about g*e mg/dL, so each window weighs its current level (the level is
        # an input, so this moves capacity, not the conditional median the network learns)
        level = np.exp(fit.inputs["now"])
        sample_weight = sample_weight * level / np.average(level, weights=sample_weight)
    weight = torch.from_numpy(sample_weight.astype(np.float32))
    vseq, vglob = tensors(val)
    net = PriorGRU(hidden, glob.shape[1])
    taus = torch.tensor(QUANTILE_LEVELS, dtype=torch.float32)[None, :, None]
    median = QUANTILE_LEVELS.index(0.5)

    def pinball(pred, y):
        # all quantiles, plus extra weight on the median: it is the forecast people are scored on
        diff = y[:, None, :] - pred
        loss = torch.maximum(taus * diff, (taus - 1) * diff).mean(dim=(1, 2))
        return loss + median_weight * diff[:, median].abs().mean(dim=1)
    batch = 512
    steps = epochs * ((len(seq) + batch - 1) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    started = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(seq))
        for i in range(0, len(seq), batch):
            b = order[i : i + batch]
            loss = (pinball(net(seq[b], glob[b]), target[b]) * weight[b]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            pred = net(vseq, vglob)[:, median].numpy().astype(np.float64) * scale
        log(f"  gru epoch {epoch + 1}/{epochs} ({time.perf_counter() - started:.0f}s): {fmt_score(score(val, pred))}")

    # ONNX export (the legacy TorchScript exporter: no extra packages, a plain GRU op). Besides
    # the quantiles it returns the GRU's last state: the network's learned summary of the
    # window, which a personal model may take as inputs.
    import io

    class WithSummary(nn.Module):
        def __init__(self, inner: PriorGRU):
            super().__init__()
            self.inner = inner

        def forward(self, seq, glob):
            _, state = self.inner.gru(seq)
            out = self.inner.head(torch.cat([state[-1], glob], dim=1))
            return out.view(-1, len(QUANTILE_LEVELS), len(SHORT_HORIZONS)), state[-1]

    buffer = io.BytesIO()
    net.eval()
    torch.onnx.export(
        WithSummary(net), (vseq[:2], vglob[:2]), buffer, input_names=["seq", "glob"],
        output_names=["log_change", "summary"],
        dynamic_axes={"seq": {0: "n"}, "glob": {0: "n"}, "log_change": {0: "n"}, "summary": {0: "n"}},
        opset_version=17, dynamo=False,
    )
    n_params = int(sum(p.numel() for p in net.parameters()))
    spec = {"kind": "onnx", "file": "model.onnx", "architecture": f"GRU({hidden}) + MLP(64)", "parameters": n_params,
            "epochs": epochs, "glob_mean": glob_mean.tolist(), "glob_std": glob_std.tolist(),
            "fixed_scale": scale, "output_scale": scale, "quantized": False,
            "quantile_levels": list(QUANTILE_LEVELS), "loss": "pinball (quantile) loss on the log change",
            "summary_size": hidden}
    return {"spec": spec, "files": {"model.onnx": buffer.getvalue()}}


def batch_dependence(prior: PopulationPrior, samples: Samples, rows: int = 64) -> float:
    """Largest change (log units) of a window's median forecast alone vs inside a batch."""
    pick = np.linspace(0, len(samples) - 1, rows).astype(int)
    batch = prior.log_change(samples.windows[pick], samples.times_ns[pick], TZ)[0][:, : len(SHORT_HORIZONS)]
    alone = np.vstack([prior.log_change(samples.windows[i : i + 1], samples.times_ns[i : i + 1], TZ)[0]
                       [:, : len(SHORT_HORIZONS)] for i in pick])
    return float(np.max(np.abs(batch - alone)))


def quantize_onnx(candidate: dict) -> dict:
    """int8 dynamic quantization of the GRU's weights (activations stay float)."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(candidate["files"]["model.onnx"])
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        data = dst.read_bytes()
    spec = {**candidate["spec"], "quantized": True, "quantization": "onnxruntime dynamic, int8 weights"}
    return {"spec": spec, "files": {"model.onnx": data}}


# ----------------------------------------------------------------------------------------------
# bands


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Quantile of `values` where each carries `weights` (people weigh the same, not rows)."""
    ok = np.isfinite(values)
    v, w = values[ok], weights[ok]
    order = np.argsort(v)
    v, w = v[order], w[order]
    cum = np.cumsum(w) / w.sum()
    return float(v[min(int(np.searchsorted(cum, q)), len(v) - 1)])


def fit_short_bands(val: Samples, val_change: np.ndarray, cal: Samples, cal_change: np.ndarray) -> dict:
    from scipy.optimize import nnls

    D = short_difficulty(val.inputs)
    coef = np.zeros((len(SHORT_HORIZONS), D.shape[1]))
    for j in range(len(SHORT_HORIZONS)):
        r = np.abs(val.target[:, j] - val_change[:, j])
        ok = np.isfinite(r)
        # each corpus the same weight in the difficulty fit
        sw = np.sqrt(val.weight[ok])
        c, _ = nnls(D[ok] * sw[:, None], r[ok] * sw)
        c[0] = max(c[0], 0.002)  # a floor so a flat window never gets a zero-width band
        coef[j] = c
    scale = short_difficulty(cal.inputs) @ coef.T
    normalized = (cal.target - cal_change) / scale
    quantiles = {}
    for level in (0.80, 0.95):
        alpha = 1 - level
        tag = f"{round(level * 100)}"
        quantiles[f"lower_{tag}"] = [weighted_quantile(normalized[:, j], cal.person_weight, alpha / 2)
                                     for j in range(len(SHORT_HORIZONS))]
        quantiles[f"upper_{tag}"] = [weighted_quantile(normalized[:, j], cal.person_weight, 1 - alpha / 2)
                                     for j in range(len(SHORT_HORIZONS))]
    return {
        "method": "split conformal over people: log(actual/forecast) / difficulty, each calibration person weighs the same",
        "method_key": "normalized",
        "difficulty_inputs": ["1", "10 x RMS 5-min log change over 2 h", "same over 30 min", "10 x |15-min log change|"],
        "difficulty_coef": coef.tolist(),
        "quantiles": quantiles,
        "n_calibration_rows": int(len(cal)),
        "n_calibration_people": int(len(np.unique(cal.person))),
    }


def fit_cqr_bands(cal: Samples, cal_change: np.ndarray, cal_quantiles: np.ndarray) -> dict:
    """Conformalised quantile regression (Romano et al. 2019), each side separately, with a
    guard for low glucose.

    The network's own 10/90% (2.5/97.5%) quantiles already follow the window's difficulty; on
    calibration people we measure how far outcomes fall outside them (person-weighted) and move
    each edge by the (1 - alpha/2) quantile of that excess, per horizon.

    Low guard: that alone covered only 63% (44%) of held-out outcomes below 70 mg/dL at 60 (120)
    minutes with the 80% band: an unexpected fall lies beyond a band centred on the median more
    often than the average outcome does, and lows are where a too-narrow band misleads most.
    So the lower edge moves at least as far as it takes to cover LOW_GUARD of the calibration
    outcomes below LOW_GLUCOSE (person-weighted), per horizon. It costs width: overall coverage
    rises by up to about 8 points at 2 hours (the bench reports both).
    """
    levels = list(QUANTILE_LEVELS)
    indices = {"80": [levels.index(0.10), levels.index(0.90)], "95": [levels.index(0.025), levels.index(0.975)]}
    low = (cal.target + cal.inputs["now"][:, None]) < np.log(LOW_GLUCOSE)
    corrections, guarded = {}, {}
    for tag, (lo, hi) in indices.items():
        alpha = 1 - int(tag) / 100
        below = cal_quantiles[:, lo] - cal.target  # > 0: outcome under the lower edge
        above = cal.target - cal_quantiles[:, hi]
        lower, moved = [], 0
        for j in range(len(SHORT_HORIZONS)):
            edge = weighted_quantile(below[:, j], cal.person_weight, 1 - alpha / 2)
            m = low[:, j] & np.isfinite(below[:, j])
            if m.sum() >= LOW_GUARD_MIN_OUTCOMES:
                guard = weighted_quantile(below[m, j], cal.person_weight[m], LOW_GUARD[tag])
                moved += guard > edge
                edge = max(edge, guard)
            lower.append(edge)
        corrections[f"lower_{tag}"] = lower
        corrections[f"upper_{tag}"] = [weighted_quantile(above[:, j], cal.person_weight, 1 - alpha / 2)
                                       for j in range(len(SHORT_HORIZONS))]
        guarded[tag] = int(moved)
    return {
        "method": "conformalised quantile regression over people: the network's quantiles moved per side and "
                  "horizon by the person-weighted quantile of calibration outcomes beyond them (log space); "
                  f"lower edges at least wide enough to cover {LOW_GUARD['80']:.0%} ({LOW_GUARD['95']:.0%}) of "
                  f"calibration outcomes below {LOW_GLUCOSE:.0f} mg/dL",
        "method_key": "cqr",
        "level_indices": indices,
        "corrections": corrections,
        "low_guard": {"below_mg_dl": LOW_GLUCOSE, "coverage": LOW_GUARD, "horizons_moved": guarded,
                      "calibration_outcomes_below": int(low.sum())},
        "n_calibration_rows": int(len(cal)),
        "n_calibration_people": int(len(np.unique(cal.person))),
    }


# ----------------------------------------------------------------------------------------------
# far horizons


def profile_from(p: PersonGrid, end_ns: int) -> TimeOfDayProfile | None:
    keep = p.times_ns < end_ns
    if keep.sum() < 100:
        return None
    grid = pd.DataFrame(
        {"glucose_mg_dl": p.values[keep], "observed": p.observed[keep]},
        index=pd.DatetimeIndex(p.times_ns[keep].astype("datetime64[ns]")).tz_localize("UTC"),
    )
    return TimeOfDayProfile().fit(grid, TZ)


def far_samples(grids, roles: set[str], prior: PopulationPrior, cut_fraction: float = 0.5) -> list[dict]:
    """Per person: profile from the first `cut_fraction` of their span, origins after it."""
    out = []
    for corpus, people in grids.items():
        for role, p in people:
            if role not in roles or len(p) < 300:
                continue
            cut = p.times_ns[0] + int((p.times_ns[-1] - p.times_ns[0]) * cut_fraction)
            profile = profile_from(p, cut)
            if profile is None:
                continue
            future = p.future(FAR_KNOTS, observed_only=True)
            ok = (p.times_ns >= cut) & np.isfinite(p.windows).all(axis=1) & p.observed & np.isfinite(future).any(axis=1)
            idx = np.flatnonzero(ok)[::FAR_STRIDE]
            if len(idx) == 0:
                continue
            inputs = prior_inputs(p.windows[idx], p.times_ns[idx], TZ, fixed_scale=prior.fixed_scale)
            short = prior._short_log_change(inputs)
            out.append({
                "corpus": corpus, "person": f"{corpus}:{p.subject}", "profile": profile, "inputs": inputs,
                "short_120": short[:, -1], "target": np.log(np.clip(future[idx], INPUT_LOW, INPUT_HIGH)) - inputs["now"][:, None],
                "actual": future[idx],
            })
    return out


def lad_fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, iterations: int = 30, ridge: float = 1e-3) -> np.ndarray:
    """Least absolute deviations by IRLS (a median regression: the forecast that minimises MAE)."""
    beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    for _ in range(iterations):
        r = np.abs(y - X @ beta)
        ww = w / np.maximum(r, 1e-3)
        A = X * ww[:, None]
        beta = np.linalg.solve(X.T @ A + ridge * np.eye(X.shape[1]), A.T @ y)
    return beta


def train_far(train: list[dict], cal: list[dict]) -> dict:
    far = {"knots": list(FAR_KNOTS), "inputs_window": FAR_INPUTS_BASE,
           "inputs_profile": FAR_INPUTS_BASE + FAR_INPUTS_PROFILE}
    for mode in ("window", "profile"):
        coefs, qs = [], {f"{s}_{t}": [] for t in ("80", "95") for s in ("lower", "upper")}
        for k, h in enumerate(FAR_KNOTS):
            rows_X, rows_y, rows_w = [], [], []
            for s in train:
                design = far_design(s["inputs"], s["short_120"], [h], TZ, s["profile"] if mode == "profile" else None)[:, 0, :]
                y = s["target"][:, k]
                ok = np.isfinite(y)
                rows_X.append(design[ok])
                rows_y.append(y[ok])
                rows_w.append(np.full(ok.sum(), 1.0 / max(ok.sum(), 1)))  # each person the same
            X, y, w = np.vstack(rows_X), np.concatenate(rows_y), np.concatenate(rows_w)
            w *= len(w) / w.sum()
            beta = lad_fit(X, y, w)
            coefs.append(beta)
            # conformal on calibration people, each person the same weight
            res, pw = [], []
            for s in cal:
                design = far_design(s["inputs"], s["short_120"], [h], TZ, s["profile"] if mode == "profile" else None)[:, 0, :]
                r = s["target"][:, k] - design @ beta
                if mode == "profile":
                    r = r / profile_spread(s["profile"], s["inputs"]["minutes"], [h])[:, 0]
                ok = np.isfinite(r)
                if ok.sum() == 0:
                    continue
                res.append(r[ok])
                pw.append(np.full(ok.sum(), 1.0 / ok.sum()))
            res, pw = np.concatenate(res), np.concatenate(pw)
            for tag, level in (("80", 0.80), ("95", 0.95)):
                qs[f"lower_{tag}"].append(weighted_quantile(res, pw, (1 - level) / 2))
                qs[f"upper_{tag}"].append(weighted_quantile(res, pw, 1 - (1 - level) / 2))
        far[mode] = {"coef": np.array(coefs).tolist(), "band_quantiles": qs}
    return far


def far_report(val: list[dict], prior: PopulationPrior) -> dict:
    """Validation MAE per knot: prior with profile, prior from the window only, the ToD median."""
    rows = {}
    for k, h in enumerate(FAR_KNOTS):
        err = {"profile": [], "window": [], "tod_median": []}
        for s in val:
            actual = s["actual"][:, k]
            ok = np.isfinite(actual)
            if ok.sum() == 0:
                continue
            for mode in ("profile", "window"):
                coef = np.asarray(prior.far[mode]["coef"][k])
                design = far_design(s["inputs"], s["short_120"], [h], TZ, s["profile"] if mode == "profile" else None)[:, 0, :]
                value = np.exp(s["inputs"]["now"] + design @ coef)
                err[mode].append(np.mean(np.abs(value - actual)[ok]))
            med = s["profile"].median_at((s["inputs"]["minutes"] + h) % 1440)
            err["tod_median"].append(np.mean(np.abs(med - actual)[ok]))
        rows[h] = {key: round(float(np.mean(v)), 2) for key, v in err.items() if v}
        rows[h]["people"] = len(err["tod_median"])
    return rows


# ----------------------------------------------------------------------------------------------
# assembling


def artifact_files(candidate: dict, bands: dict, far: dict | None, training: dict) -> dict[str, bytes]:
    meta = {
        "version": PRIOR_VERSION if not candidate["spec"].get("quantized") else PRIOR_VERSION + "-int8",
        "format": 1,
        "short_horizons": SHORT_HORIZONS,
        "far_horizons": FAR_HORIZONS if far else [],
        "inputs": {"window": "25 values on the 5-minute grid, oldest first, mg/dL", "globals": GLOBAL_INPUTS},
        "short": candidate["spec"],
        "short_bands": bands,
        "far": far,
        "training": training,
    }
    files = dict(candidate["files"])
    files[METADATA] = json.dumps(meta, indent=1, sort_keys=True).encode()
    return files


def in_memory_prior(candidate: dict, bands: dict | None = None, far: dict | None = None) -> PopulationPrior:
    dummy_bands = bands or {"difficulty_coef": [[1.0, 0, 0, 0]] * len(SHORT_HORIZONS),
                            "quantiles": {k: [0.0] * len(SHORT_HORIZONS) for k in ("lower_80", "upper_80", "lower_95", "upper_95")}}
    return PopulationPrior(artifact_files(candidate, dummy_bands, far, {}))


def same_numbers(a, b, rtol: float = 1e-9) -> bool:
    """Equal JSON trees, numbers within rtol: the far horizons' least-absolute-deviation fits
    agree between runs only to about 1e-14 (floating-point summation order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_numbers(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_numbers(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)
    return a == b


def refuse_changed_forecasts(files: dict[str, bytes]) -> None:
    """A new PATCH of the shipped prior must forecast exactly as the shipped one (forecast_line):
    release-2 models built on the old one keep being served with it."""
    try:
        shipped = json.loads((PRIOR_DIR / METADATA).read_bytes())
    except (OSError, ValueError):
        return
    new = json.loads(files[METADATA])
    if shipped["version"] == new["version"] or forecast_line(shipped["version"]) != forecast_line(new["version"]):
        return
    same = (
        same_numbers(shipped["short"], new["short"]) and same_numbers(shipped["far"], new["far"])
        and all((PRIOR_DIR / name).read_bytes() == data for name, data in files.items() if name != METADATA)
    )
    if not same:
        raise SystemExit(
            f"{new['version']} is a PATCH of the shipped {shipped['version']} but forecasts differently; "
            "raise MINOR (PRIOR_VERSION) so release-2 models retrain on it"
        )


def write_pin(digest: str) -> None:
    text = PIN_FILE.read_text()
    text = re.sub(r'SHA256SUMS_DIGEST = "[0-9a-f]*"', f'SHA256SUMS_DIGEST = "{digest}"', text)
    PIN_FILE.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--median-weight", type=float, default=1.0,
                        help="extra weight of the median's absolute error in the GRU's loss")
    parser.add_argument("--level-weighted", action="store_true",
                        help="GRU: weigh each window's loss by its glucose level (errors in mg/dL, not log units)")
    parser.add_argument("--layers", type=int, default=1, help="GRU layers")
    parser.add_argument("--candidates", default="linear,xgboost,gru")
    parser.add_argument("--ship", action="store_true", help="replace mlmodels/core/prior/ with the chosen candidate")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    wanted = args.candidates.split(",")
    log(f"glucast population prior {PRIOR_VERSION}: seed {args.seed}, {args.threads} threads, torch {torch.__version__}")
    grids = load_grids(args.data)
    split = {c: {role: sorted(p.subject for r, p in people if r == role) for role in ("fit", "val", "cal", "test")}
             for c, people in grids.items()}
    for c, roles in split.items():
        log(f"{c}: " + ", ".join(f"{role} {len(s)} people" for role, s in roles.items()))
    stride = {"weinstock2016": 2, "colas2019": 1}
    fit = build_samples(grids, "fit", stride)
    val = build_samples(grids, "val", {"weinstock2016": 2, "colas2019": 1})
    cal = build_samples(grids, "cal", {"weinstock2016": 2, "colas2019": 1})
    test = build_samples(grids, "test", {"weinstock2016": 2, "colas2019": 1})
    log(f"samples: fit {len(fit)}, validation {len(val)}, calibration {len(cal)}, test {len(test)} windows "
        f"({time.perf_counter() - started:.0f}s)")

    candidates: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for name in wanted:
        t0 = time.perf_counter()
        log(f"candidate {name}:")
        if name == "linear":
            candidates[name] = train_linear(fit, val)
        elif name == "xgboost":
            candidates[name] = train_xgboost(fit, val, args.seed, args.threads)
        elif name == "gru":
            candidates[name] = train_gru(fit, val, args.seed, args.epochs, args.hidden, args.median_weight,
                                         level_weighted=args.level_weighted, layers=args.layers)
            timings[name] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            candidates["gru_int8"] = quantize_onnx(candidates[name])
            name = "gru_int8"
        else:
            raise SystemExit(f"unknown candidate {name!r}")
        timings[name] = round(time.perf_counter() - t0, 1)

    scores, priors = {}, {}
    for name, cand in candidates.items():
        prior = in_memory_prior(cand)
        priors[name] = prior
        scores[name] = score(val, prior._short_log_change(val.inputs))
        log(f"validation people, {name}: {fmt_score(scores[name])}")
    eligible = [n for n in candidates if n != "gru_int8"]
    chosen = min(eligible, key=lambda n: scores[n]["ratio_to_persistence"])
    quantization = None
    if "gru_int8" in scores and chosen == "gru":
        loss = scores["gru_int8"]["ratio_to_persistence"] / scores["gru"]["ratio_to_persistence"] - 1
        drift = batch_dependence(priors["gru_int8"], val)
        keep = loss <= QUANT_TOLERANCE and drift <= BATCH_TOLERANCE
        quantization = {"validation_error_change": round(loss, 5), "batch_dependence_log": drift, "kept": keep,
                        "bytes_int8": len(candidates["gru_int8"]["files"]["model.onnx"]),
                        "bytes_fp32": len(candidates["gru"]["files"]["model.onnx"])}
        log(f"int8 GRU: validation error {loss:+.2%} vs fp32 (tolerance {QUANT_TOLERANCE:.0%}); a window's forecast "
            f"moves by up to {drift:.1e} in log units with the rest of its batch (tolerance {BATCH_TOLERANCE:.0e}) "
            f"-> {'kept' if keep else 'not kept'}; model file {quantization['bytes_int8']} vs "
            f"{quantization['bytes_fp32']} bytes")
        if keep:
            chosen = "gru_int8"
    log(f"chosen on validation people: {chosen}")

    bands = {}
    for name, prior in priors.items():
        val_change = prior._short_log_change(val.inputs)
        cal_change = prior._short_log_change(cal.inputs)
        if cal.inputs["quantiles"] is not None:
            bands[name] = fit_cqr_bands(cal, cal_change, cal.inputs["quantiles"])
        else:
            bands[name] = fit_short_bands(val, val_change, cal, cal_change)
        log(f"bands {name}: {bands[name]['method'][:60]}...")

    t0 = time.perf_counter()
    chosen_prior = in_memory_prior(candidates[chosen], bands[chosen])
    far_train = far_samples(grids, {"fit", "val"}, chosen_prior)
    far_cal = far_samples(grids, {"cal"}, chosen_prior)
    far_val = far_samples(grids, {"val"}, chosen_prior)
    far = train_far(far_train, far_cal)
    report = far_report(far_val, in_memory_prior(candidates[chosen], bands[chosen], far))
    timings["far"] = round(time.perf_counter() - t0, 1)
    log("far horizons, validation people (profile from the first half of their days), MAE mg/dL:")
    log(f"  {'horizon':>8} {'prior+profile':>14} {'prior window-only':>18} {'ToD median':>11} {'people':>7}")
    for h, r in report.items():
        log(f"  {h:>8} {r['profile']:>14.2f} {r['window']:>18.2f} {r['tod_median']:>11.2f} {r['people']:>7}")

    test_scores = {}
    for name, cand in candidates.items():
        prior = in_memory_prior(cand, bands[name], far)
        test_scores[name] = score(test, prior._short_log_change(test.inputs))
        log(f"HELD-OUT test people (reported, never used for a choice), {name}: {fmt_score(test_scores[name])}")

    total = round(time.perf_counter() - started, 1)
    training = {
        "command": "python -m mlmodels.core.prior_training --ship",
        "seed": args.seed,
        "threads": args.threads,
        "epochs": args.epochs,
        "hidden": args.hidden,
        "median_weight": args.median_weight,
        "level_weighted": args.level_weighted,
        "layers": args.layers,
        "split": {
            "method": f"per corpus, subjects ranked by sha256('{SPLIT_SALT}:<corpus>:<subject>'); "
                      + ", ".join(f"{role} {fraction:.0%}" for role, fraction in ROLE_FRACTIONS) + ", rest fit; "
                      "broll2021 never read",
            "subjects": split,
        },
        "chosen": chosen,
        "chosen_on": "validation people: mean ratio of MAE to persistence over both corpora at 30 and 60 min",
        "int8": quantization,
        "validation": scores,
        "test": test_scores,
        "far_validation_mae": {str(h): r for h, r in report.items()},
        "timings_s": {**timings, "total": total},
        "libraries": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
        "samples": {"fit": len(fit), "validation": len(val), "calibration": len(cal), "test": len(test)},
    }
    CANDIDATE_DIR.mkdir(parents=True, exist_ok=True)
    for name, cand in candidates.items():
        files = artifact_files(cand, bands[name], far, {**training, "candidate": name})
        write_artifact(CANDIDATE_DIR / name, files)
    size = sum(len(b) for b in artifact_files(candidates[chosen], bands[chosen], far, training).values())
    log(f"candidate artifacts written to {CANDIDATE_DIR.relative_to(REPO)}/; chosen {chosen}, {size / 1024:.0f} KiB")
    if args.ship:
        files = artifact_files(candidates[chosen], bands[chosen], far, training)
        refuse_changed_forecasts(files)
        digest = write_artifact(PRIOR_DIR, files)
        write_pin(digest)
        log(f"shipped to {PRIOR_DIR.relative_to(REPO)}/ (SHA256SUMS {digest[:16]}..., pinned in prior_pin.py)")
    log(f"training time: {total:.0f}s ({', '.join(f'{k} {v:.0f}s' for k, v in timings.items())})")


if __name__ == "__main__":
    sys.exit(main())
