"""Paired comparison of two forecasters on the same origins (numeric core, no Django).

When a candidate runs in shadow, it forecasts exactly the origins the served model forecast,
and both are scored against the same readings. The comparison is then paired: the question is
"by how much does the candidate's absolute error differ from the served one's on the same
points?", which removes the person-to-person and hour-to-hour differences that make an unpaired
canary comparison need many more outcomes.

    paired_mae_difference(n, sum_abs_candidate, sum_abs_served) -> dict

Inputs are per person (one entry each): the number of paired points and the sums of absolute
errors of each model over them. The figures pool all points (MAE = total absolute error / total
points); the uncertainty is a bootstrap over PEOPLE (resampling people with replacement), because
points of one person are strongly correlated and people are what a rollout generalises to.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 2000
INTERVAL = 0.95


def paired_mae_difference(
    n,
    sum_abs_candidate,
    sum_abs_served,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    interval: float = INTERVAL,
    seed: int = 0,
) -> dict:
    """Pooled MAE of both, their difference (candidate - served, mg/dL) and relative difference
    (/ served MAE) with `interval` bootstrap intervals over people (percentile method; seeded, so
    the same data always gives the same interval). Intervals are None with fewer than 2 people.
    """
    n = np.asarray(n, dtype=np.float64)
    candidate = np.asarray(sum_abs_candidate, dtype=np.float64)
    served = np.asarray(sum_abs_served, dtype=np.float64)
    keep = n > 0
    n, candidate, served = n[keep], candidate[keep], served[keep]
    people = int(len(n))
    total = float(n.sum())
    out = {
        "n_pairs": int(total),
        "n_people": people,
        "mae_candidate": None,
        "mae_served": None,
        "difference": None,
        "difference_interval": None,
        "relative_difference": None,
        "relative_interval": None,
        "interval": interval,
        "bootstrap_samples": samples,
    }
    if total == 0:
        return out
    mae_c, mae_s = candidate.sum() / total, served.sum() / total
    out.update(
        mae_candidate=float(mae_c),
        mae_served=float(mae_s),
        difference=float(mae_c - mae_s),
        relative_difference=float((mae_c - mae_s) / mae_s) if mae_s > 0 else None,
    )
    if people < 2:
        return out
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, people, size=(samples, people))
    boot_n = n[picks].sum(axis=1)
    boot_c = candidate[picks].sum(axis=1) / boot_n
    boot_s = served[picks].sum(axis=1) / boot_n
    alpha = (1 - interval) / 2
    diff = boot_c - boot_s
    out["difference_interval"] = [float(np.quantile(diff, alpha)), float(np.quantile(diff, 1 - alpha))]
    ok = boot_s > 0
    if ok.any():
        rel = diff[ok] / boot_s[ok]
        out["relative_interval"] = [float(np.quantile(rel, alpha)), float(np.quantile(rel, 1 - alpha))]
    return out
