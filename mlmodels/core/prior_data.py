"""The corpora the population prior learns from, and the fixed split of their people (no Django).

Development data only: nothing here runs in the product. The training command
(`python -m mlmodels.core.prior_training`), the bench (`bench/population.py`) and the tests read
the public corpora through these helpers so that all three see the same people in the same roles.

The split is by PERSON, fixed before anything is trained: each subject id is ranked by a SHA-256
of "glucast-prior-v1:<corpus>:<subject>", and the ranks decide the role. The first 20% of a
corpus's people are the held-out test people ("people the model never saw"); the next 10% are
calibration people (the conformal bands come from them), the next 10% validation people (model
choice, early stopping); the rest are fitted. Broll (5 people with type 2 diabetes) is never
trained on. A hash of the id rather than a random draw: the same subject lands in the same role
on every machine and in every run, whatever order the file lists people in.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlmodels.core.features import grid_windows
from mlmodels.core.preparation import prepare_grid

SPLIT_SALT = "glucast-prior-v1"
ROLE_FRACTIONS = (("test", 0.20), ("cal", 0.10), ("val", 0.10))  # the rest: "fit"
ROLES = ("fit", "val", "cal", "test")

CORPUS_FILES = {
    "weinstock2016": "weinstock2016_cgm.csv.gz",
    "colas2019": "colas2019_cgm.csv.gz",
}
BROLL_FILE = "broll2021_cgm.csv"
BROLL = "broll2021"


def default_data_dir() -> Path:
    """GLUCAST_SHARED_DATA, else `../shared/data` beside the checkout (absent in production).

    Read from the environment, not settings: the numeric core imports no Django.
    """
    configured = os.environ.get("GLUCAST_SHARED_DATA")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "data"


def subject_rank_key(corpus: str, subject: str) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}:{corpus}:{subject}".encode()).hexdigest()


def split_subjects(corpus: str, subjects) -> dict[str, str]:
    """Role ('fit', 'val', 'cal' or 'test') of every subject of `corpus`; deterministic.

    Broll is test-only. For the training corpora the counts are round(fraction * n) per role.
    """
    subjects = sorted(set(str(s) for s in subjects))
    if corpus == BROLL:
        return {s: "test" for s in subjects}
    ranked = sorted(subjects, key=lambda s: subject_rank_key(corpus, s))
    roles: dict[str, str] = {}
    start = 0
    for role, fraction in ROLE_FRACTIONS:
        count = int(round(fraction * len(ranked)))
        for s in ranked[start : start + count]:
            roles[s] = role
        start += count
    for s in ranked[start:]:
        roles[s] = "fit"
    return roles


def load_corpus(path: Path) -> dict[str, pd.DataFrame]:
    """subject -> readings (time tz-aware, glucose_mg_dl), sorted by time.

    The files hold naive local clock times; they are read as UTC and used with tz="UTC", so the
    clock the models see is the person's local clock (the same convention as bench/accuracy.py).
    """
    data = pd.read_csv(path)
    data["time"] = pd.to_datetime(data["time"]).dt.tz_localize("UTC")
    out = {}
    for subject, person in data.groupby("subject", sort=True):
        out[str(subject)] = person[["time", "glucose_mg_dl"]].sort_values("time").reset_index(drop=True)
    return out


@dataclass
class PersonGrid:
    """One person's 5-minute grid as arrays: windows ending at every slot, values, flags."""

    corpus: str
    subject: str
    times_ns: np.ndarray  # (n,) grid slot times (UTC ns)
    values: np.ndarray  # (n,) mg/dL, NaN in unbridged gaps
    observed: np.ndarray  # (n,) a real reading fell in the slot
    windows: np.ndarray  # (n, 25) the window ending at each slot (NaN-padded)

    def __len__(self) -> int:
        return len(self.times_ns)

    def future(self, horizons_min, *, observed_only: bool = True) -> np.ndarray:
        """(n, len(horizons)) value at slot + h (NaN past the data, in gaps, or interpolated)."""
        n = len(self.values)
        steps = np.asarray(horizons_min, dtype=int) // 5
        idx = np.arange(n)[:, None] + steps[None, :]
        inside = idx < n
        idx = np.where(inside, idx, 0)
        out = np.where(inside, self.values[idx], np.nan)
        if observed_only:
            out = np.where(inside & self.observed[idx], out, np.nan)
        return out


def person_grid(corpus: str, subject: str, readings: pd.DataFrame) -> PersonGrid:
    grid = prepare_grid(readings)
    windows, _, _ = grid_windows(grid)
    return PersonGrid(
        corpus=corpus,
        subject=subject,
        times_ns=grid.index.asi8.copy(),
        values=grid["glucose_mg_dl"].to_numpy(dtype=float),
        observed=grid["observed"].to_numpy(dtype=bool),
        windows=np.ascontiguousarray(windows),
    )


def load_grids(data_dir: Path | None = None, corpora=tuple(CORPUS_FILES)) -> dict[str, list[tuple[str, PersonGrid]]]:
    """corpus -> [(role, PersonGrid), ...] for the training corpora (roles from split_subjects)."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    out: dict[str, list[tuple[str, PersonGrid]]] = {}
    for corpus in corpora:
        people = load_corpus(data_dir / CORPUS_FILES[corpus])
        roles = split_subjects(corpus, people)
        out[corpus] = [(roles[s], person_grid(corpus, s, r)) for s, r in people.items()]
    return out


def load_broll(data_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    people = load_corpus(data_dir / BROLL_FILE)
    return {s.replace("Subject ", "Broll S"): r for s, r in people.items()}
