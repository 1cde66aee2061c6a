"""Per person: what release 2 is made of at 60 min, and how it compares with the prior alone and
the per-person ridge (the diagnosis in docs/bands.md, section 1).

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/blend_weights.py CORPUS ROLE N
     (CORPUS weinstock2016 | colas2019 | broll2021 | shanghai; ROLE val | test; N people)

The 70% past / 30% future protocol of bench/cold_start.py, a forecast every 30 minutes. Per
person: glucose SD, days known, the trained algorithm, what deploy-if-better serves, the blend's
weights at 60 min, and MAE at 60 min of what serves, the trained model, the prior alone, the
per-person ridge and persistence; then pooled MAE at 30/60/90/120 min. The section-1 figures were
measured at commit bb6089a (before the per-horizon choice): `git stash; git checkout bb6089a --
mlmodels` then this script, then `git checkout HEAD -- mlmodels; git stash pop`. "shanghai" reads
the Shanghai T2DM recordings (15-minute CGM) as a study unlike the prior's corpora.
"""
import os, sys, time
from pathlib import Path
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, pandas as pd
from bench.cold_start import ridge_baseline, served, train_or_none, TZ
from mlmodels.core.coldstart import PopulationForecaster
from mlmodels.core.features import HORIZONS, build_targets
from mlmodels.core.population import shipped_prior
from mlmodels.core.preparation import prepare_grid
from mlmodels.core.prior_data import CORPUS_FILES, default_data_dir, load_corpus, split_subjects, load_broll
from mlmodels.core.schemas import Release1Features, Release2Features
D = default_data_dir()
prior = shipped_prior()
corpus, role, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if corpus == "broll2021":
    people = load_broll(D)
elif corpus == "shanghai":
    import glob
    people = {}
    for f in sorted(glob.glob(str(D / "shanghai/data_set/Shanghai_T2DM/*.csv")))[:n]:
        d = pd.read_csv(f, usecols=[0, 1]); d.columns = ["time", "glucose_mg_dl"]
        d["time"] = pd.to_datetime(d["time"]).dt.tz_localize("UTC"); d = d.dropna()
        people[Path(f).stem] = d.sort_values("time").reset_index(drop=True)
else:
    every = load_corpus(D / CORPUS_FILES[corpus]); roles = split_subjects(corpus, every)
    people = {s: every[s] for s in sorted(every) if roles[s] == role}
people = dict(list(people.items())[:n])
H = [30, 60, 90, 120]
err = {}
t00 = time.time()
for s, r in people.items():
    t0, t1 = r["time"].iloc[0], r["time"].iloc[-1]
    ku = t0 + (t1 - t0) * 0.7
    past = r[r["time"] < ku]
    grid = prepare_grid(r); times = grid.index
    X1 = Release1Features().build_grid(grid, TZ).to_numpy(); X2 = Release2Features(prior).build_grid(grid, TZ).to_numpy()
    Y = build_targets(grid, HORIZONS).to_numpy(); pm = np.asarray(times < ku)
    org = np.flatnonzero(~pm & grid["observed"].to_numpy() & np.isfinite(X1).all(1) & np.isfinite(X2).all(1))[::6]
    if len(org) < 5: continue
    r2 = train_or_none(past, prior=prior)
    if r2 is None: continue
    m2, chose = served(r2, past, PopulationForecaster(prior), "prior", TZ)
    out = {"served": m2.forecast_matrix(X2[org], times.asi8[org], HORIZONS, TZ)["value"],
           "blend": r2.forecaster.forecast_matrix(X2[org], times.asi8[org], HORIZONS, TZ)["value"],
           "prior": PopulationForecaster(prior).forecast_matrix(X2[org], times.asi8[org], HORIZONS, TZ)["value"]}
    now = X1[org, 0]
    out["ridge"] = now[:, None] + ridge_baseline(X1, Y, pm).predict(X1[org])
    out["persist"] = np.repeat(now[:, None], len(HORIZONS), 1)
    actual = now[:, None] + build_targets(grid, HORIZONS, observed_only=True).to_numpy()[org]
    hp = r2.hyperparameters
    w = hp["blend_weights"]["60"]; names = hp["candidates"]
    sd = float(np.nanstd(grid["glucose_mg_dl"]))
    row = {k: np.nanmean(np.abs(v - actual), axis=0) for k, v in out.items()}
    print(f"{s} sd {sd:5.1f} days {(ku-t0)/pd.Timedelta(days=1):4.1f} alg {r2.algorithm:18s} served {chose:14s} w60 "
          + ",".join(f"{a}:{b:.2f}" for a, b in zip(names, w)) + " | MAE60 " +
          " ".join(f"{k} {v[11]:.2f}" for k, v in row.items()), flush=True)
    for k, v in out.items():
        err.setdefault(k, []).append(np.abs(v - actual))
print("pooled MAE", corpus, role, len(err["ridge"]), "people", f"{time.time()-t00:.0f}s")
for k, v in err.items():
    a = np.vstack(v)
    print(f"  {k:8s} " + " ".join(f"{h}:{np.nanmean(a[:, HORIZONS.index(h)]):.2f}" for h in H))
