"""The corpora with recorded treatments, and the fixed split of their people (no Django).

Development data only (bench/treatments.py and the tests; nothing here runs in the product):

- `t1d_uom/` (T1D-UOM, CC BY 4.0; University of Manchester, DOI 10.5281/zenodo.15169263):
  CGM in mmol/L with day-first times; bolus doses (units; the insulin kind is not recorded:
  read as rapid-acting); basal rows with `insulin_kind` R (a pump's basal RATE in U/h, valid
  until the next row; at most 24 h) or L (a daily long-acting injection: flat action, not a
  basal deviation, not used); logged meals with carbohydrate grams; steps per activity period
  (counted at the period's end, so only past steps are seen).
- `shanghai/` (ShanghaiT1DM, CC0 1.0; Zhao Q. et al. 2023, Scientific Data 10:35): the type 1
  recordings, CGM every 15 minutes in mg/dL; pump bolus (units of Novolin R, regular human
  insulin) and basal rate (U/h, until the next row; "temporarily suspend" = 0); subcutaneous
  injections as text ("Novolin R / Humulin R / Gansulin R, 4 IU" read as regular insulin;
  long-acting glargine, detemir or degludec not used); the diet as text WITHOUT carbohydrate amounts: every logged meal is a meal
  event with unknown grams (only glucose given as "N g glucose" / "Glucose N g" counts as grams),
  so meal timing is what this corpus contributes.

Split by PERSON before anything is chosen: each corpus's people are ranked by
sha256("glucast-treatments-v1:<corpus>:<subject>"); the first 30% are held-out test people
(figures only, never used to choose a feature or a setting), the rest development people. The
Shanghai subject is the person (1001 ..), not the recording: their recordings are kept apart
(months apart) and all go to the person's role.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mlmodels.core.treatments import Treatments

SPLIT_SALT = "glucast-treatments-v1"
TEST_FRACTION = 0.30
MGDL_PER_MMOLL = 18.0  # the project's constant (observations/units.py)
MINUTE_NS = 60 * 10**9
MAX_BASAL_SEGMENT_MIN = 24 * 60
T1D_UOM = "t1d_uom"
SHANGHAI_T1 = "shanghai_t1"


def split_people(corpus: str, subjects) -> dict[str, str]:
    """'test' or 'dev' for every subject; deterministic and independent of file order."""
    ranked = sorted(set(map(str, subjects)), key=lambda s: hashlib.sha256(f"{SPLIT_SALT}:{corpus}:{s}".encode()).hexdigest())
    n_test = int(round(TEST_FRACTION * len(ranked)))
    return {s: ("test" if i < n_test else "dev") for i, s in enumerate(ranked)}


def _ns(series: pd.Series, *, dayfirst: bool) -> np.ndarray:
    times = pd.to_datetime(series, dayfirst=dayfirst, errors="coerce")
    return pd.DatetimeIndex(times).tz_localize("UTC").as_unit("ns").asi8


def _segments(start_ns: np.ndarray, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rate rows valid until the next row (at most a day): (start, rate, minutes)."""
    order = np.argsort(start_ns, kind="stable")
    start_ns, rates = start_ns[order], rates[order]
    # rows at the same instant: the last one holds
    last = np.append(start_ns[1:] != start_ns[:-1], True)
    start_ns, rates = start_ns[last], rates[last]
    ends = np.append(start_ns[1:], start_ns[-1] + MAX_BASAL_SEGMENT_MIN * MINUTE_NS) if len(start_ns) else start_ns
    minutes = np.minimum((ends - start_ns) / MINUTE_NS, MAX_BASAL_SEGMENT_MIN)
    return start_ns, rates, minutes


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, encoding="utf-8-sig")
    return frame.loc[:, [c for c in frame.columns if not str(c).startswith("Unnamed")]]


def load_t1d_uom(data_dir: Path) -> dict[str, tuple[pd.DataFrame, Treatments]]:
    """subject id (e.g. '2301') -> (readings with tz-aware `time` and `glucose_mg_dl`, Treatments).

    Times are the study's local clock read as UTC (as for the other corpora).
    """
    root = Path(data_dir) / "t1d_uom"
    people = {}
    for path in sorted((root / "Glucose Data").glob("UoMGlucose*.csv")):
        subject = path.stem.replace("UoMGlucose", "")
        g = _read(path)
        t = _ns(g["bg_ts"], dayfirst=True)
        v = pd.to_numeric(g["value"], errors="coerce").to_numpy() * MGDL_PER_MMOLL
        ok = (t > 0) & np.isfinite(v)
        readings = pd.DataFrame({"time": pd.to_datetime(t[ok], utc=True), "glucose_mg_dl": v[ok]})
        readings = readings.drop_duplicates("time").sort_values("time", ignore_index=True)
        parts: dict = {}
        bolus = root / "Insulin Data" / "Bolus Data" / f"UoMBolus{subject}.csv"
        if bolus.exists():
            b = _read(bolus)
            parts["insulin_ns"] = _ns(b["bolus_ts"], dayfirst=True)
            parts["insulin_units"] = pd.to_numeric(b["bolus_dose"], errors="coerce").to_numpy(dtype=float)
            parts["insulin_kind"] = np.full(len(b), "rapid", dtype=object)
        basal = root / "Insulin Data" / "Basal Data" / f"UoMBasal{subject}.csv"
        if basal.exists():
            b = _read(basal)
            pump = b["insulin_kind"].astype(str).str.strip() == "R"
            if pump.any():
                start, rate, minutes = _segments(_ns(b.loc[pump, "basal_ts"], dayfirst=True),
                                                 pd.to_numeric(b.loc[pump, "basal_dose"], errors="coerce").to_numpy(float))
                parts.update(basal_ns=start, basal_rate_u_h=rate, basal_minutes=minutes)
        meals = root / "Nutrition Data" / f"UoMNutrition{subject}.csv"
        if meals.exists():
            m = _read(meals)
            parts["carbs_ns"] = _ns(m["meal_ts"], dayfirst=True)
            parts["carbs_g"] = pd.to_numeric(m["carbs_g"], errors="coerce").to_numpy(dtype=float)
        activity = root / "Activity Data" / f"UoMActivity{subject}.csv"
        if activity.exists():
            a = _read(activity)
            duration = pd.to_numeric(a["duration_s"], errors="coerce").fillna(0).to_numpy() * 10**9
            parts["steps_ns"] = _ns(a["activity_ts"], dayfirst=True) + duration.astype(np.int64)
            parts["steps"] = pd.to_numeric(a["step_count"], errors="coerce").fillna(0).to_numpy(dtype=float)
        people[subject] = (readings, Treatments(**parts))
    return people


_GLUCOSE_GRAMS = re.compile(r"(?:(\d+(?:\.\d+)?)\s*g\s*glucose|glucose\s*(\d+(?:\.\d+)?)\s*g)", re.IGNORECASE)
# Regular human insulin by brand; "Novolin NR" (11 rows: unclear which insulin) is not used.
_SC_REGULAR = re.compile(r"(?:novolin|humulin|gansulin)\s*r\s*,\s*(\d+(?:\.\d+)?)\s*iu", re.IGNORECASE)


def load_shanghai_t1(data_dir: Path) -> dict[str, list[tuple[pd.DataFrame, Treatments]]]:
    """person id (e.g. '1002') -> their recordings, each (readings, Treatments)."""
    root = Path(data_dir) / "shanghai" / "data_set" / "Shanghai_T1DM"
    people: dict[str, list] = {}
    seen = set()
    for path in sorted(root.glob("processed_*.csv")):
        # processed_<person>_<n>_<date>[.xlsx].csv; one recording is there twice (identical files)
        _, person, number, date = path.name.split(".")[0].split("_")[:4]
        if (person, number) in seen or not person.isdigit():
            continue
        seen.add((person, number))
        f = pd.read_csv(path)
        cols = {c.split(" (")[0].strip(): c for c in f.columns}
        t = _ns(f["Date"], dayfirst=False)
        v = pd.to_numeric(f[cols["CGM"]], errors="coerce").to_numpy()
        ok = (t > 0) & np.isfinite(v)
        readings = pd.DataFrame({"time": pd.to_datetime(t[ok], utc=True), "glucose_mg_dl": v[ok]})
        readings = readings.drop_duplicates("time").sort_values("time", ignore_index=True)
        bolus = pd.to_numeric(f[cols["CSII - bolus insulin"]], errors="coerce").to_numpy()
        has = np.isfinite(bolus) & (bolus > 0)
        ins_t, ins_u = list(t[has]), list(bolus[has])
        for when, text in zip(t, f[cols["Insulin dose - s.c."]].fillna("").astype(str)):
            for units in _SC_REGULAR.findall(text):
                ins_t.append(when)
                ins_u.append(float(units))
        raw_rate = f[cols["CSII - basal insulin"]]
        rate_text = raw_rate.fillna("").astype(str).str.lower()
        rate = pd.to_numeric(raw_rate, errors="coerce").to_numpy(dtype=float, copy=True)
        rate[rate_text.str.contains("suspend").to_numpy()] = 0.0
        rows = np.isfinite(rate)
        parts: dict = {"insulin_ns": ins_t, "insulin_units": ins_u, "insulin_kind": np.full(len(ins_t), "regular", dtype=object)}
        if rows.any():
            start, r, minutes = _segments(t[rows], rate[rows])
            parts.update(basal_ns=start, basal_rate_u_h=r, basal_minutes=minutes)
        diet = f[cols["Dietary intake"]].fillna("").astype(str)
        logged = f[cols["Dietary intake"]].notna().to_numpy() & ~diet.str.contains("not available", case=False).to_numpy()
        grams = np.full(int(logged.sum()), np.nan)
        for i, text in enumerate(diet[logged]):
            found = _GLUCOSE_GRAMS.search(text)
            if found:
                grams[i] = float(found.group(1) or found.group(2))
        parts.update(carbs_ns=t[logged], carbs_g=grams)
        people.setdefault(person, []).append((readings, Treatments(**parts)))
    return people
