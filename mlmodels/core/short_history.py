"""Bands of the short-history answer by the person's variability class (numeric core, no Django).

With less than the two gap-free hours a model needs (the first hours after a sensor change),
glucast answers AR2 from the last two readings (`coldstart.ShortHistoryForecaster`). One band
table for everybody was measured too narrow for people with type 1 diabetes and too wide for the
others, so the band table is chosen by the person's **variability class**, read from their
readings *before the gap*:

    variability(times_ns, values, before_ns) -> (sd, n_readings)
        standard deviation of glucose (mg/dL) over the HISTORY_DAYS (7) before `before_ns` (the
        serving side passes as_of - 2 h: everything before that lies before the gap, since a
        short history is shorter than 2 hours)
    ShortHistoryBands.load().classify(sd, n_readings) -> class name, or "pooled" with too little
        history (fewer than MIN_READINGS readings, about 4 hours)
    ShortHistoryBands.load().offsets(class_name, horizons, now) -> {"lower_80": ..., "upper_95": ...}
        log offsets of the band edges from the AR2 forecast at those horizons, from current values `now`

The table (`short_history_bands.json`, checked in) holds, per class and horizon, the 10/90% and
2.5/97.5% quantiles of log(actual / AR2 forecast from two readings) over the CALIBRATION people of
the prior's corpora (mlmodels/core/prior_data.py; never the test people), separately below and from
100 mg/dL of the current value (LEVEL_EDGES), each person weighing
the same over all their origins; the class edges are quartiles of the calibration people's SD.
The SD in mg/dL was chosen, on the VALIDATION people, over the RMS of 5- or 30-minute log changes
and over the SD of log glucose (a CV): with those, people with type 1 diabetes in a quiet week
fell into the classes of people without diabetes and were under-covered (80% bands at 60 min,
Weinstock / Colás validation people: SD 0.80 / 0.80, RMS 5-min 0.78 / 0.83, RMS 30-min
0.76 / 0.84, CV 0.79 / 0.81). Bands are
asymmetric because AR2's errors are (it decays towards 140 mg/dL). Regenerate it with

    OMP_NUM_THREADS=1 python -m mlmodels.core.short_history --write

(deterministic: no randomness; prints the calibration people's own coverage as a check). Held-out
figures: `bench/cold_start.py --only short`.
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from mlmodels.core.estimators import ar2_path
from mlmodels.core.preparation import prepare_grid
from mlmodels.core.prior_data import CORPUS_FILES, default_data_dir, load_corpus, split_subjects

TABLE_FILE = Path(__file__).resolve().parent / "short_history_bands.json"
FORMAT = "glucast-short-history-bands-1"
HISTORY_DAYS = 7
GAP_MARGIN_MIN = 120  # readings in the last 2 hours before a forecast are not "before the gap"
MIN_READINGS = 48  # about 4 hours of readings (after a sensor change there are usually days)
N_CLASSES = 4
CLASS_NAMES = ("steady", "moderate", "variable", "very_variable")
POOLED = "pooled"
# Calibration horizons (minutes): every 5 to 2 h, then the baseline table's far knots.
TABLE_HORIZONS = tuple(range(5, 121, 5)) + (180, 240, 360)
LEVELS = {"80": (0.10, 0.90), "95": (0.025, 0.975)}
BAND_EDGES = ("lower_80", "upper_80", "lower_95", "upper_95")
# Separate quantiles below and from this current value (mg/dL): AR2 decays towards 140, so its
# errors from a low start differ. Chosen on the VALIDATION people (tables from the calibration
# people): with one table per class, outcomes below 70 mg/dL of Weinstock's validation people were
# covered 53% / 48% at 30 / 60 min; split at 80 / 100 / 120 / 140 mg/dL: 66/51, 67/57, 65/58,
# 64/57 %, overall coverage unchanged (0.79-0.80). 100 kept.
LEVEL_EDGES = (100.0,)
CLAMP = (40.0, 400.0)
STRIDE = 3  # calibration origins every 15 minutes


def variability(times_ns, values, before_ns: int, *, days: float = HISTORY_DAYS) -> tuple[float, int]:
    """(standard deviation of glucose in mg/dL, number of readings) over [before - days, before)."""
    times_ns = np.asarray(times_ns, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    keep = (times_ns < before_ns) & (times_ns >= before_ns - int(days * 86400 * 10**9)) & np.isfinite(values)
    v = np.clip(values[keep], *CLAMP)
    if len(v) < 2:
        return float("nan"), int(len(v))
    return float(np.sqrt(max(np.mean(v * v) - np.mean(v) ** 2, 0.0))), int(len(v))


class ShortHistoryBands:
    """The checked-in band table: class edges and per-class log offsets per horizon."""

    def __init__(self, table: dict):
        if table.get("format") != FORMAT:
            raise ValueError(f"short-history band table format {table.get('format')!r} is not {FORMAT}")
        self.table = table
        self.edges = [float(e) for e in table["class_edges"]]
        self.names = list(table["class_names"])
        self.horizons = np.asarray(table["horizons"], dtype=float)
        self.min_readings = int(table["min_readings"])
        self.level_edges = [float(e) for e in table["level_edges"]]
        self._offsets = {
            name: [{key: np.asarray(v, dtype=float) for key, v in entry.items()} for entry in by_level]
            for name, by_level in table["offsets"].items()
        }

    @classmethod
    @lru_cache(maxsize=1)
    def load(cls, path: Path = TABLE_FILE) -> "ShortHistoryBands":
        return cls(json.loads(Path(path).read_text()))

    def classify(self, sd: float, n_readings: int) -> str:
        if not np.isfinite(sd) or n_readings < self.min_readings:
            return POOLED
        return self.names[int(np.searchsorted(self.edges, sd, side="right"))]

    def offsets(self, name: str, horizons, now) -> dict[str, np.ndarray]:
        """Log offsets of the band edges from the forecast, (len(now), len(horizons)) each, for
        forecasts from current values `now` (mg/dL; the level band picks the row of the table);
        flat beyond the table's last horizon."""
        entries = self._offsets.get(name) or self._offsets[POOLED]
        h = np.asarray(horizons, dtype=float)
        level = np.searchsorted(self.level_edges, np.nan_to_num(np.asarray(now, dtype=float), nan=0.0), side="right")
        out = {}
        for key in BAND_EDGES:
            rows = np.stack([np.interp(h, self.horizons, entry[key]) for entry in entries])
            out[key] = rows[level]
        return out

    def describe(self, name: str) -> str:
        """Words for quality.reason: which table and what it rests on."""
        if name == POOLED:
            return "no earlier readings to judge your variability, so ranges for everybody"
        i = self.names.index(name)
        low = f"{self.edges[i - 1]:.0f}" if i > 0 else None
        high = f"{self.edges[i]:.0f}" if i < len(self.edges) else None
        span = (f"below {high}" if low is None else f"above {low}" if high is None else f"{low}-{high}")
        return (f"ranges for variability class '{name}' (glucose spread {span} mg/dL), judged from your "
                "readings of the days before the gap")


# --- Offline calibration (development data only) ------------------------------------------


def ar2_log_error(values, observed, horizons, stride: int = STRIDE):
    """Origins of one person's 5-minute grid where the current and previous slots hold values:
    (origin slots, log(actual / AR2) per horizon (NaN where the outcome was not observed), AR2)."""
    n = len(values)
    steps = np.asarray(horizons) // 5
    prev = np.concatenate([[np.nan], values[:-1]])
    origins = np.flatnonzero(observed & np.isfinite(values) & np.isfinite(prev))[::stride]
    if len(origins) == 0:
        return origins, np.empty((0, len(horizons))), np.empty((0, len(horizons)))
    path = ar2_path(values[origins], prev[origins], int(steps.max()))[:, steps - 1]
    idx = origins[:, None] + steps[None, :]
    inside = idx < n
    idx = np.where(inside, idx, 0)
    actual = np.where(inside & observed[idx], values[idx], np.nan)
    actual = np.where((actual <= CLAMP[0]) | (actual >= CLAMP[1]), np.nan, actual)  # censored at the limits
    return origins, np.log(actual / path), path


def origin_variability(grid_times_ns, values, observed, origins):
    """`variability` of each origin as the serving side sees it (real readings in the HISTORY_DAYS
    before `origin - GAP_MARGIN_MIN`), for all origins at once with cumulative sums."""
    t = np.asarray(grid_times_ns)[observed]
    v = np.clip(np.asarray(values)[observed], *CLAMP)
    cs = np.concatenate([[0.0], np.cumsum(v)])
    cs2 = np.concatenate([[0.0], np.cumsum(v * v)])
    before = np.asarray(grid_times_ns)[origins] - GAP_MARGIN_MIN * 60 * 10**9
    a = np.searchsorted(t, before - HISTORY_DAYS * 86400 * 10**9, side="left")
    b = np.searchsorted(t, before, side="left")  # readings a .. b-1
    n = b - a
    mean = (cs[b] - cs[a]) / np.maximum(n, 1)
    var = (cs2[b] - cs2[a]) / np.maximum(n, 1) - mean**2
    return np.where(n > 1, np.sqrt(np.maximum(var, 0.0)), np.nan), n


def collect(grids, horizons=TABLE_HORIZONS):
    """Per origin: person key, corpus, SD before the gap, its readings, current value, log errors (n, H)."""
    rows = {"person": [], "corpus": [], "sd": [], "n": [], "now": [], "err": [], "pred": []}
    for corpus, person, times_ns, values, observed in grids:
        origins, err, path = ar2_log_error(values, observed, horizons)
        if len(origins) == 0:
            continue
        sd, n = origin_variability(times_ns, values, observed, origins)
        rows["person"] += [f"{corpus}:{person}"] * len(origins)
        rows["corpus"] += [corpus] * len(origins)
        rows["sd"].append(sd)
        rows["n"].append(n)
        rows["now"].append(values[origins])
        rows["err"].append(err)
        rows["pred"].append(path)
    return {
        "person": np.asarray(rows["person"]), "corpus": np.asarray(rows["corpus"]),
        "sd": np.concatenate(rows["sd"]), "n": np.concatenate(rows["n"]),
        "now": np.concatenate(rows["now"]), "err": np.vstack(rows["err"]), "pred": np.vstack(rows["pred"]),
    }


def weighted_quantile(x, w, q):
    """The q-quantile of the finite `x`, each weighing `w`, interpolated between midpoints of
    cumulative weight. The sort is stable: where values tie (a few percent of log errors do), the
    order they are left in moves the interpolation, and numpy's default sort leaves ties in an
    order that changes between releases (numpy 2.4 moved the table's fifth decimal). A stable
    sort keeps the order the data came in, whichever release sorts."""
    ok = np.isfinite(x)
    x, w = x[ok], w[ok]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    cw = np.cumsum(w) - 0.5 * w
    return float(np.interp(q * w.sum(), cw, x))


def person_weights(person):
    """Each person weighs the same (a Weinstock person has 6x the origins of a Colás person)."""
    _, inverse, counts = np.unique(person, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def calibrate(data) -> dict:
    has = data["n"] >= MIN_READINGS
    w_all = person_weights(data["person"])
    edges = [weighted_quantile(data["sd"][has], w_all[has], k / N_CLASSES) for k in range(1, N_CLASSES)]
    cls = np.where(has, np.searchsorted(edges, np.nan_to_num(data["sd"]), side="right"), -1)
    offsets, counts = {}, {}
    # Each person weighs the same over all their origins: a person with few origins in a class
    # counts little there (not as much as someone who lives in it).
    w_person = person_weights(data["person"])
    groups = [(POOLED, np.ones(len(cls), dtype=bool))] + [(name, cls == i) for i, name in enumerate(CLASS_NAMES)]
    level = np.searchsorted(LEVEL_EDGES, data["now"], side="right")
    for name, rows in groups:
        by_level = []
        for band in range(len(LEVEL_EDGES) + 1):
            sel = rows & (level == band)
            entry = {}
            for tag, (lo, hi) in LEVELS.items():
                entry[f"lower_{tag}"] = [round(weighted_quantile(data["err"][sel, j], w_person[sel], lo), 5)
                                         for j in range(len(TABLE_HORIZONS))]
                entry[f"upper_{tag}"] = [round(weighted_quantile(data["err"][sel, j], w_person[sel], hi), 5)
                                         for j in range(len(TABLE_HORIZONS))]
            by_level.append(entry)
        offsets[name] = by_level
        counts[name] = {"origins": int(rows.sum()), "people": int(len(np.unique(data["person"][rows]))),
                        "origins_by_level": [int((rows & (level == b)).sum()) for b in range(len(LEVEL_EDGES) + 1)]}
    return {
        "format": FORMAT,
        "statistic": "SD of glucose (mg/dL) over the 7 days before as_of - 2 h",
        "min_readings": MIN_READINGS,
        "class_names": list(CLASS_NAMES),
        "class_edges": [round(e, 6) for e in edges],
        "horizons": list(TABLE_HORIZONS),
        "level_edges": list(LEVEL_EDGES),
        "levels": {k: list(v) for k, v in LEVELS.items()},
        "offsets": offsets,
        "calibration": {"people": "role 'cal' of mlmodels.core.prior_data.split_subjects", "counts": counts},
    }


def coverage(bands: ShortHistoryBands, data, horizon: int, level: str = "80", *, rows=None, classes=None):
    """Share of outcomes inside the band (log space) at `horizon` for `rows` of collected data."""
    j = TABLE_HORIZONS.index(horizon)
    rows = np.ones(len(data["sd"]), dtype=bool) if rows is None else rows
    names = (np.array([bands.classify(r, p) for r, p in zip(data["sd"], data["n"])])
             if classes is None else classes)
    err = data["err"][:, j]
    inside = np.zeros(len(err), dtype=bool)
    for name in np.unique(names):
        sel = names == name
        o = bands.offsets(name, [horizon], data["now"][sel])
        inside[sel] = (err[sel] >= o[f"lower_{level}"][:, 0]) & (err[sel] <= o[f"upper_{level}"][:, 0])
    ok = rows & np.isfinite(err)
    return float(inside[ok].mean()) if ok.any() else float("nan"), int(ok.sum())


def corpus_grids(data_dir, role: str):
    """(corpus, person, grid times, values, observed) of one role of the prior's corpora."""
    for corpus, name in CORPUS_FILES.items():
        people = load_corpus(Path(data_dir) / name)
        roles = split_subjects(corpus, people)
        for subject in sorted(people):
            if roles[subject] != role:
                continue
            grid = prepare_grid(people[subject])
            yield (corpus, subject, grid.index.asi8, grid["glucose_mg_dl"].to_numpy(float),
                   grid["observed"].to_numpy(bool))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Calibrate the short-history band table on calibration people.")
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--write", action="store_true", help=f"write {TABLE_FILE.name}")
    args = parser.parse_args(argv)
    data = collect(list(corpus_grids(args.data, "cal")))
    table = calibrate(data)
    print(f"calibration people: {len(np.unique(data['person']))}, origins {len(data['sd'])}")
    print(f"class edges (SD of glucose, mg/dL): {table['class_edges']}")
    for name, c in table["calibration"]["counts"].items():
        j30, j60 = TABLE_HORIZONS.index(30), TABLE_HORIZONS.index(60)
        print(f"  {name:14s} {c['people']:3d} people {c['origins']:6d} origins {c['origins_by_level']}; "
              "80% log band at 30 / 60 min below | from 100 mg/dL: " + " | ".join(
                  f"[{o['lower_80'][j30]:+.3f}, {o['upper_80'][j30]:+.3f}] / [{o['lower_80'][j60]:+.3f}, "
                  f"{o['upper_80'][j60]:+.3f}]" for o in table["offsets"][name]))
    bands = ShortHistoryBands(table)
    for corpus in np.unique(data["corpus"]):
        rows = data["corpus"] == corpus
        low = rows & (data["pred"][:, TABLE_HORIZONS.index(30)] * np.exp(data["err"][:, TABLE_HORIZONS.index(30)]) < 70)
        print(f"  check on the calibration people, {corpus}: 80% coverage at 30 / 60 min "
              f"{coverage(bands, data, 30, rows=rows)[0]:.3f} / {coverage(bands, data, 60, rows=rows)[0]:.3f}; "
              f"outcome < 70 mg/dL at 30 min {coverage(bands, data, 30, rows=low)[0]:.3f}")
    if args.write:
        TABLE_FILE.write_text(json.dumps(table, indent=1) + "\n")
        print(f"wrote {TABLE_FILE}")


if __name__ == "__main__":
    main()
