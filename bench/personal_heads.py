"""Can a person's own days improve on the population prior? Personal heads on top of it, measured.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/personal_heads.py [--people N] [--days D]

Release 2 lets each person's data decide how much of the prior to keep (blend, ridge on the
prior's forecasts, XGBoost correcting it); on held-out corpus people that adds only 0-2.5% over
the prior. This bench asks whether another personal head would add more, on the same people and
origins as bench/cold_start.py (held-out 20% of each corpus, never trained or tuned on, and the
five Broll people): the person's first 70% of time (or, with --days D, their first D days) is
their past, a forecast every 30 minutes of the rest is scored. Heads, all fitted on the past with
alpha chosen on its last 20% (grid up to 1e5, so "no correction" is always reachable):

  ridge1   per-person ridge on release-1 features (the "best simple" baseline of the issue)
  ridge2   the release-2 ridge candidate: release-1 features plus the prior's forecasts
  resid    ridge on the prior's residual (target: outcome minus the prior), release-2 features:
           shrinks toward the prior itself rather than toward no change
  resid+S  the same plus the prior's 64-number learned window summary (its GRU state)
  residPS  residual ridge on the prior's forecasts and the summary only

Printed: MAE ratio to ridge1 at 30 / 60 min, pooled over origins, per set.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cold_start import ridge_baseline  # noqa: E402
from mlmodels.core.estimators import RidgeForecaster, default_features  # noqa: E402
from mlmodels.core.features import HORIZONS, PRIOR_CHANGE_FEATURES, build_targets  # noqa: E402
from mlmodels.core.population import shipped_prior  # noqa: E402
from mlmodels.core.preparation import prepare_grid  # noqa: E402
from mlmodels.core.prior_data import CORPUS_FILES, default_data_dir, load_broll, load_corpus, split_subjects  # noqa: E402
from mlmodels.core.schemas import Release1Features, Release2Features  # noqa: E402

TZ = "UTC"
SCORED = (30, 60)
ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
HEADS = ("prior", "ridge1", "ridge2", "resid", "resid+S", "residPS")


def residual_ridge(Z, R, fit, val, train):
    """Ridge on the prior's residual R from inputs Z; alpha on val, refitted on all of train."""
    best = None
    for alpha in ALPHAS:
        scaler = StandardScaler().fit(Z[fit])
        model = Ridge(alpha=alpha).fit(scaler.transform(Z[fit]), R[fit])
        error = float(np.mean(np.abs(model.predict(scaler.transform(Z[val])) - R[val])))
        if best is None or error < best[0]:
            best = (error, alpha)
    scaler = StandardScaler().fit(Z[train])
    model = Ridge(alpha=best[1]).fit(scaler.transform(Z[train]), R[train])
    return lambda Zq: model.predict(scaler.transform(Zq))


def score_person(errors, corpus: str, readings: pd.DataFrame, known_until, prior) -> bool:
    grid = prepare_grid(readings)
    times = grid.index
    X1 = Release1Features().build_grid(grid, TZ).to_numpy()
    features = Release2Features(prior)
    X2 = features.build_grid(grid, TZ).to_numpy()
    Y = build_targets(grid, HORIZONS).to_numpy()
    past = np.asarray(times < known_until)
    complete = np.isfinite(X2).all(axis=1)
    train = np.flatnonzero(past & complete & np.isfinite(Y).all(axis=1))
    origins = np.flatnonzero(~past & grid["observed"].to_numpy() & complete)[::6]
    if len(train) < 100 or len(origins) < 5:
        return False
    cut = train[int(len(train) * 0.8)]
    fit, val = train[train < cut], train[train >= cut]
    names = features.names()
    P = X2[:, [names.index(f) for f in PRIOR_CHANGE_FEATURES]]
    S = np.full((len(X2), prior.metadata["short"]["summary_size"]), np.nan)
    S[complete] = prior.window_summary(Release2Features.windows_of(X2[complete]), times.asi8[complete], TZ)
    ridge2_features = default_features("ridge", 2)
    Zb = X2[:, [names.index(f) for f in ridge2_features]]
    R = Y - P
    tuned = RidgeForecaster(features=ridge2_features).fit(X2[fit], Y[fit], X2[val], Y[val])
    out = {
        "prior": P[origins],
        "ridge1": ridge_baseline(X1, Y, past).predict(X1[origins]),
        "ridge2": RidgeForecaster(alpha=tuned.alpha, features=ridge2_features).fit(X2[train], Y[train]).predict(X2[origins]),
    }
    for name, Z in (("resid", Zb), ("resid+S", np.hstack([Zb, S])), ("residPS", np.hstack([P, S]))):
        out[name] = P[origins] + residual_ridge(Z, R, fit, val, train)(Z[origins])
    for h in SCORED:
        j = HORIZONS.index(h)
        actual = Y[origins, j]
        ok = np.isfinite(actual)
        for name, change in out.items():
            errors[(corpus, name, h)].append(np.abs(change[ok, j] - actual[ok]))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--people", type=int, default=0, help="at most N held-out people per corpus (0 = all)")
    parser.add_argument("--days", type=float, default=0.0, help="known days from the start (0 = the first 70%%)")
    args = parser.parse_args()
    prior = shipped_prior()
    started = time.perf_counter()
    groups: dict[str, dict[str, pd.DataFrame]] = {}
    for corpus, name in CORPUS_FILES.items():
        everyone = load_corpus(args.data / name)
        roles = split_subjects(corpus, everyone)
        held_out = [s for s in sorted(everyone) if roles[s] == "test"]
        groups[corpus] = {s: everyone[s] for s in (held_out[: args.people] if args.people else held_out)}
    groups["broll2021"] = load_broll(args.data)
    errors, counted = defaultdict(list), defaultdict(int)
    for corpus, people in groups.items():
        for readings in people.values():
            t0, t1 = readings["time"].iloc[0], readings["time"].iloc[-1]
            known = t0 + pd.Timedelta(days=args.days) if args.days else t0 + (t1 - t0) * 0.7
            counted[corpus] += score_person(errors, corpus, readings, known, prior)
    print(f"personal heads on the prior {prior.version}; known: "
          f"{f'first {args.days:g} days' if args.days else 'first 70% of time'}; MAE ratio to ridge1 at 30 / 60 min")
    print(f"{'set':14s} {'people':>6s}  " + "  ".join(f"{h:>11s}" for h in HEADS))
    for corpus in groups:
        if not counted[corpus]:
            continue
        base = {h: np.mean(np.concatenate(errors[(corpus, "ridge1", h)])) for h in SCORED}
        cells = ["/".join(f"{np.mean(np.concatenate(errors[(corpus, name, h)])) / base[h]:.3f}" for h in SCORED)
                 for name in HEADS]
        print(f"{corpus:14s} {counted[corpus]:>6d}  " + "  ".join(f"{c:>11s}" for c in cells))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
