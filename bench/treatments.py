"""Release 3 (recorded treatments as inputs) against glucast's glucose-only release 2, on held-out people.

Run: OMP_NUM_THREADS=1 GLUCAST_SHARED_DATA=/work/shared/data .venv/bin/python bench/treatments.py
     [--role test|dev] [--stride 6] [--people N] [--controls N] [--no-costs] [--inputs insulin,carbs,...]

People: the held-out 30% of T1D-UOM and of ShanghaiT1DM (by person: the fixed split of
mlmodels/core/treatment_data.py, never used to choose anything; `--role dev` runs the other 70%,
on which the features' settings may be tried). Each Shanghai recording is scored on its own.
Controls (people without treatments): the 5 Broll people and the first `--controls` held-out
Weinstock people of the prior's split; their release 3 is trained with no records, as glucast
does for someone who logs nothing.

Per person the first 70% of their time is their past: release 2 and release 3 are trained on it
by the real pipeline (`train_forecaster`, release 3 with the treatments recorded in it) and
served as glucast serves them after deploy-if-better (`mlmodels.core.evaluation.decide` on the
model's own held-out part): release 2 against the population prior, release 3 against what
release 2 serves the person (a person's first release-3 model replaces their release 2 only if
better). From the remaining 30%, a forecast every `--stride` slots (30 minutes), from the
readings and the treatments recorded up to that moment only.

Printed: MAE / RMSE at 30 / 60 / 120 min per corpus (pooled over origins) for release 2,
release 3 as served and release 3's trained model before the deploy rule; the same in the 3
hours after a logged meal, outside them, and at night (00:00-06:00 local); 80% / 95% band
coverage per glucose range; which release-3 candidates the per-person blends kept (weights at 30
/ 60 min); training time and warm forecast p50 / p95 of both releases in the same run.

`--inputs` (which inputs help): the treatment candidates see only these groups of treatment
features (insulin, basal, carbs, meals, steps, logged); run it on `--role dev` people.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cold_start import RANGES, Tally, served, train_or_none  # noqa: E402
from mlmodels.core import estimators  # noqa: E402
from mlmodels.core.coldstart import PopulationForecaster  # noqa: E402
from mlmodels.core.features import HORIZONS, build_targets  # noqa: E402
from mlmodels.core.forecaster import window_from_arrays  # noqa: E402
from mlmodels.core.population import shipped_prior  # noqa: E402
from mlmodels.core.preparation import prepare_grid, reading_arrays  # noqa: E402
from mlmodels.core.prior_data import CORPUS_FILES, default_data_dir, load_broll, load_corpus, split_subjects  # noqa: E402
from mlmodels.core.schemas import Release2Features, Release3Features  # noqa: E402
from mlmodels.core.treatment_data import SHANGHAI_T1, T1D_UOM, load_shanghai_t1, load_t1d_uom, split_people  # noqa: E402
from mlmodels.core.treatments import TREATMENT_FEATURES, Treatments  # noqa: E402

TRAIN_FRACTION = 0.70
SCORED = (30, 60, 120)
TZ = "UTC"  # the corpora hold local clock times, read as UTC
METHODS = ("release_2", "release_3", "release_3_trained")
SUBSETS = ("all", "after_meal_3h", "no_meal_3h", "night")
MEAL_WINDOW_MIN = 180.0


INPUT_GROUPS = {
    "insulin": ("iob_", "insulin_next_"), "basal": ("basal_",), "carbs": ("cob_", "carbs_next_"),
    "meals": ("meals_on_board", "minutes_since_meal", "carbs_last_3h"), "steps": ("steps_",),
    "logged": ("treatments_logged_",),
}


def restrict_inputs(groups: list[str]) -> list[str]:
    """The treatment candidates see only the treatment features of `groups` (an ablation)."""
    keep = [n for n in TREATMENT_FEATURES if any(n.startswith(p) for g in groups for p in INPUT_GROUPS[g])]
    original = estimators.default_features

    def restricted(kind, release=1, *, treatments=False):
        return [n for n in original(kind, release, treatments=treatments) if n not in TREATMENT_FEATURES or n in keep]

    estimators.default_features = restricted
    return keep


def units(role: str, limit: int) -> dict[str, list[tuple[str, pd.DataFrame, Treatments]]]:
    data = default_data_dir()
    out: dict[str, list] = {T1D_UOM: [], SHANGHAI_T1: []}
    uom = load_t1d_uom(data)
    roles = split_people(T1D_UOM, uom)
    chosen = [s for s in sorted(uom) if roles[s] == role][: limit or None]
    out[T1D_UOM] = [(s, *uom[s]) for s in chosen]
    sh = load_shanghai_t1(data)
    roles = split_people(SHANGHAI_T1, sh)
    chosen = [s for s in sorted(sh) if roles[s] == role][: limit or None]
    out[SHANGHAI_T1] = [(f"{s}/{i}", r, t) for s in chosen for i, (r, t) in enumerate(sh[s])]
    return out


def controls(n: int) -> dict[str, list]:
    data = default_data_dir()
    out = {"broll2021": [(s, r, Treatments()) for s, r in load_broll(data).items()]}
    if n:
        everyone = load_corpus(data / CORPUS_FILES["weinstock2016"])
        roles = split_subjects("weinstock2016", everyone)
        held = [s for s in sorted(everyone) if roles[s] == "test"][:n]
        out["weinstock2016"] = [(s, everyone[s], Treatments()) for s in held]
    return out


def score_person(tally: Tally, info: dict, corpus: str, readings: pd.DataFrame, tr: Treatments, stride: int, prior):
    t0, t1 = readings["time"].iloc[0], readings["time"].iloc[-1]
    cut = t0 + (t1 - t0) * TRAIN_FRACTION
    past = readings[readings["time"] < cut]
    past_tr = tr.before(cut.value)
    started = time.perf_counter()
    r2 = train_or_none(past, prior=prior)
    t_r2 = time.perf_counter() - started
    started = time.perf_counter()
    r3 = train_or_none(past, prior=prior, treatments=past_tr)
    t_r3 = time.perf_counter() - started
    if r2 is None or r3 is None:
        return False
    info["train_s"][corpus].append((t_r2, t_r3))
    model_2, chose_2 = served(r2, past, PopulationForecaster(prior), "prior", TZ)
    model_3, chose_3 = served(r3, past, model_2, "release_2", TZ)
    tally.chosen[(corpus, "release_2")][chose_2] += 1
    tally.chosen[(corpus, "release_3")][chose_3] += 1
    weights = r3.forecaster.model.weights
    for i, cand in enumerate(r3.forecaster.model.candidates):
        info["weights"][corpus][cand.name].append((weights[HORIZONS.index(30), i], weights[HORIZONS.index(60), i]))
    info["people"][corpus] += 1

    grid = prepare_grid(readings)
    times = grid.index
    X2 = Release2Features(prior).build_grid(grid, TZ).to_numpy()
    # Release 3's builder of this person (their usual basal), reading every record: each origin
    # still sees only the treatments at or before it.
    X3 = r3.forecaster.features.bind(tr).build_grid(grid, TZ).to_numpy()
    origins = np.flatnonzero(np.asarray(times >= cut) & grid["observed"].to_numpy() & np.isfinite(X2).all(axis=1))[::stride]
    if len(origins) < 5:
        return False
    t_ns = times.asi8[origins]
    future = {h: (grid["glucose_mg_dl"].to_numpy() + build_targets(grid, [h], observed_only=True)[f"h{h}"].to_numpy())[origins]
              for h in SCORED}

    def matrix(model):
        return {1: None, 2: X2, 3: X3}[model.features.version][origins]

    outs = {
        "release_2": model_2.forecast_matrix(matrix(model_2), t_ns, list(SCORED), TZ),
        "release_3": model_3.forecast_matrix(matrix(model_3), t_ns, list(SCORED), TZ),
        "release_3_trained": r3.forecaster.forecast_matrix(X3[origins], t_ns, list(SCORED), TZ),
    }
    since = X3[origins, len(Release2Features(prior).names()) + TREATMENT_FEATURES.index("minutes_since_meal")]
    logged_meal = since < MEAL_WINDOW_MIN
    hour = pd.DatetimeIndex(t_ns.astype("datetime64[ns]")).hour.to_numpy()
    masks = {"all": np.ones(len(origins), bool), "after_meal_3h": logged_meal, "no_meal_3h": ~logged_meal,
             "night": hour < 6}
    for name, out in outs.items():
        for c, h in enumerate(SCORED):
            for subset, mask in masks.items():
                bands = {k: out[k][mask, c] for k in ("lower_80", "upper_80", "lower_95", "upper_95")}
                tally.add((corpus, subset, name), h, out["value"][mask, c], future[h][mask], bands)
    return True


def report(tally: Tally, info: dict, corpora) -> None:
    for corpus in corpora:
        if not tally.err.get((corpus, "all", "release_2", 30)):
            continue
        n = sum(map(len, tally.err[(corpus, "all", "release_2", 30)]))
        print(f"\n=== {corpus}: {info['people'][corpus]} people/recordings, {n} origins; served: "
              + "; ".join(f"{m} {dict(tally.chosen[(corpus, m)])}" for m in ("release_2", "release_3")))
        for subset in SUBSETS:
            key = (corpus, subset)
            if not tally.err.get(key + ("release_2", 30)):
                continue
            n_sub = sum(map(len, tally.err[key + ("release_2", 30)]))
            print(f"  [{subset}] {n_sub} origins   " + "".join(f"MAE{h:<5d}RMSE{h:<5d}" for h in SCORED))
            for m in METHODS:
                row = "".join(f"{tally.mae(key + (m,), h):<8.2f}{tally.rmse(key + (m,), h):<9.2f}" for h in SCORED)
                print(f"    {m:18s}{row}")
            ratio = ", ".join(f"{h} min {tally.mae(key + ('release_3',), h) / tally.mae(key + ('release_2',), h) - 1:+.1%}"
                              for h in SCORED)
            trained = ", ".join(
                f"{h} min {tally.mae(key + ('release_3_trained',), h) / tally.mae(key + ('release_2',), h) - 1:+.1%}"
                for h in SCORED)
            print(f"    release 3 vs release 2 MAE: {ratio}   (trained model before the deploy rule: {trained})")
        key = (corpus, "all")
        for m in ("release_2", "release_3"):
            for h in SCORED:
                parts = []
                for name, _, _ in RANGES:
                    c80, k = tally.range_coverage(key + (m,), h, 80, name)
                    c95, _ = tally.range_coverage(key + (m,), h, 95, name)
                    parts.append(f"{name} {c80:.2f} ({c95:.2f}) [{k}]" if k else f"{name} -")
                print(f"  coverage 80% (95%) {m:10s} {h:>3d} min: all {tally.coverage(key + (m,), h, 80):.2f} "
                      f"({tally.coverage(key + (m,), h, 95):.2f}); " + "; ".join(parts))
        kept = info["weights"][corpus]
        if kept:
            print("  release-3 candidates kept by the per-person blends (people, mean weight at 30 / 60 min): " + "; ".join(
                f"{name} {len(w)} {np.mean([a for a, _ in w]):.2f} / {np.mean([b for _, b in w]):.2f}"
                for name, w in sorted(kept.items())))
        secs = info["train_s"][corpus]
        if secs:
            print(f"  training (one core), median per person: release 2 {np.median([a for a, _ in secs]):.1f} s, "
                  f"release 3 {np.median([b for _, b in secs]):.1f} s")


def costs(prior, people) -> None:
    """Warm forecast of one window, release 2 vs release 3 with the person's records (interleaved)."""
    corpus, items = next((c, v) for c, v in people.items() if v)
    subject, readings, tr = items[0]
    r2 = train_or_none(readings, prior=prior)
    r3 = train_or_none(readings, prior=prior, treatments=tr)
    times_ns, values, at_limit = reading_arrays(readings)
    end = int(times_ns[-1])
    window = window_from_arrays(times_ns[-40:], values[-40:], at_limit[-40:], None)
    recorded = tr.before(end)
    models = {"release_2": (r2.forecaster, None), "release_3": (r3.forecaster, recorded)}
    for horizons, label in (([30, 60, 120], "30/60/120 min"), (list(range(15, 1441, 15)), "24 h")):
        timings = {name: [] for name in models}
        for name, (model, t) in models.items():
            model.forecast_windows([window], horizons=horizons, tz=TZ, **({"treatments": t} if t else {}))
        for _ in range(300):
            for name, (model, t) in models.items():
                started = time.perf_counter()
                model.forecast_windows([window], horizons=horizons, tz=TZ, **({"treatments": t} if t else {}))
                timings[name].append((time.perf_counter() - started) * 1000)
        print(f"warm forecast {label} ({corpus} {subject}, one window, 300 interleaved calls): " + "; ".join(
            f"{name} p50 {np.percentile(v, 50):.2f} ms p95 {np.percentile(v, 95):.2f} ms" for name, v in timings.items())
            + f"; release 3 - release 2 at p95 {np.percentile(timings['release_3'], 95) - np.percentile(timings['release_2'], 95):+.2f} ms")
    print(f"release-3 uses treatments for this person: {r3.forecaster.uses_treatments}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["test", "dev"], default="test")
    parser.add_argument("--stride", type=int, default=6)
    parser.add_argument("--people", type=int, default=0, help="at most N people per corpus (0 = all)")
    parser.add_argument("--controls", type=int, default=8, help="held-out Weinstock people without treatments")
    parser.add_argument("--no-costs", action="store_true")
    parser.add_argument("--only", choices=["treated", "controls", "costs"], default=None)
    parser.add_argument("--inputs", help=f"comma-separated groups of {sorted(INPUT_GROUPS)} (default all)")
    args = parser.parse_args()
    if args.inputs:
        print(f"treatment candidates restricted to: {restrict_inputs(args.inputs.split(','))}")
    prior = shipped_prior()
    print(f"glucast treatments bench — prior {prior.version}, role {args.role}, stride {args.stride}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    people = units(args.role, args.people)
    for corpus, items in people.items():
        print(f"{corpus} {args.role} people: {sorted({s.split('/')[0] for s, _, _ in items})}")
    tally = Tally()
    info = {"train_s": defaultdict(list), "weights": defaultdict(lambda: defaultdict(list)), "people": defaultdict(int)}
    groups = []
    if args.only in (None, "treated"):
        groups.append(people)
    if args.only in (None, "controls"):
        groups.append(controls(args.controls))
    for group in groups:
        for corpus, items in group.items():
            for subject, readings, tr in items:
                t = time.perf_counter()
                ok = score_person(tally, info, corpus, readings, tr, args.stride, prior)
                print(f"  {corpus} {subject}: {'scored' if ok else 'skipped (too little data)'} "
                      f"in {time.perf_counter() - t:.0f} s", flush=True)
        report(tally, info, group)
    if not args.no_costs and args.only in (None, "costs"):
        costs(prior, people)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
