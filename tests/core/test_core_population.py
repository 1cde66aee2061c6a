"""The population prior as shipped: verified loading, shapes, bands, the fixed split (no Django)."""

import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlmodels.core.features import grid_windows
from mlmodels.core.population import (
    PRIOR_DIR,
    SUMS,
    PopulationPrior,
    PriorIntegrityError,
    shipped_prior,
)
from mlmodels.core.prior_data import CORPUS_FILES, split_subjects
from mlmodels.core.prior_pin import SHA256SUMS_DIGEST
from mlmodels.core.preparation import prepare_grid
from mlmodels.core.profile import TimeOfDayProfile
from tests.conftest import BROLL_CSV
from tests.core.synthetic import synthetic_person

T0 = pd.Timestamp("2026-03-02 07:00", tz="UTC").value
STEP = 5 * 60 * 10**9
SHARED_DATA = BROLL_CSV.parent  # the corpora lie beside the Broll file (GLUCAST_SHARED_DATA)


def _windows(n=3, start=120.0, slope=1.0):
    base = start + slope * np.arange(25)[None, :]
    windows = base + 10.0 * np.arange(n)[:, None]
    times = T0 + STEP * np.arange(n)
    return windows, times


def test_shipped_prior_loads_once_and_names_itself():
    prior = shipped_prior()
    assert prior is shipped_prior()  # one load per process
    assert prior.version.startswith("prior-")
    assert prior.horizons[:24] == list(range(5, 121, 5))
    assert prior.horizons[-1] == 1440 and prior.horizons == sorted(set(prior.horizons))
    assert prior.describe()["version"] == prior.version
    size = sum(p.stat().st_size for p in PRIOR_DIR.iterdir())
    assert size < 10 * 1024 * 1024


def test_predict_shape_range_and_nan_rows():
    prior = shipped_prior()
    windows, times = _windows(4)
    windows[2, 7] = np.nan
    out = prior.predict(windows, times, "Europe/Berlin")
    assert out.shape == (4, len(prior.horizons))
    assert np.isnan(out[2]).all()
    good = out[[0, 1, 3]]
    assert np.isfinite(good).all() and (good >= 40).all() and (good <= 400).all()
    # a steady rise continues upward in the first minutes
    assert out[0, 0] > windows[0, -1] - 1


def test_predict_refuses_a_wrong_window_shape():
    with pytest.raises(ValueError, match="windows must have shape"):
        shipped_prior().predict(np.full((2, 24), 120.0), np.array([T0, T0]), "UTC")
    with pytest.raises(ValueError, match="times_ns"):
        shipped_prior().predict(np.full((2, 25), 120.0), np.array([T0]), "UTC")


def test_empty_batch():
    prior = shipped_prior()
    assert prior.predict(np.zeros((0, 25)), np.zeros(0, dtype=np.int64), "UTC").shape == (0, len(prior.horizons))


def test_bands_surround_the_forecast_and_widen_with_level_and_horizon():
    prior = shipped_prior()
    windows, times = _windows(3)
    offsets = prior.band_offsets(windows, times, "UTC")
    assert set(offsets) == {"lower_80", "upper_80", "lower_95", "upper_95"}
    for key, value in offsets.items():
        assert value.shape == (3, len(prior.horizons))
        assert (value <= 0).all() if key.startswith("lower") else (value >= 0).all()
    width80 = offsets["upper_80"] - offsets["lower_80"]
    width95 = offsets["upper_95"] - offsets["lower_95"]
    assert (width95 >= width80).all()
    assert width80[0, 11] > width80[0, 0]  # 60 min wider than 5 min


def test_profile_changes_far_horizons_only():
    prior = shipped_prior()
    person = synthetic_person(days=5, seed=3, tz="UTC", noise=3.0)
    grid = prepare_grid(person)
    profile = TimeOfDayProfile().fit(grid, "UTC")
    windows, _, _ = grid_windows(grid)
    rows = np.flatnonzero(np.isfinite(windows).all(axis=1))[-5:]
    times = grid.index.asi8[rows]
    plain = prior.predict(windows[rows], times, "UTC")
    personal = prior.predict(windows[rows], times, "UTC", profile=profile)
    np.testing.assert_allclose(plain[:, :24], personal[:, :24])
    assert not np.allclose(plain[:, 24:], personal[:, 24:])
    bands = prior.forecast(windows[rows], times, "UTC", profile=profile)
    assert (bands["lower_80"] <= bands["value"]).all() and (bands["value"] <= bands["upper_80"]).all()


def _copy_artifact(tmp_path):
    target = tmp_path / "prior"
    shutil.copytree(PRIOR_DIR, target)
    return target


def test_verified_copy_loads(tmp_path):
    prior = PopulationPrior.from_directory(_copy_artifact(tmp_path), pinned_sums_sha256=SHA256SUMS_DIGEST)
    windows, times = _windows(2)
    np.testing.assert_allclose(prior.predict(windows, times, "UTC"), shipped_prior().predict(windows, times, "UTC"))


def test_a_tampered_model_file_is_refused(tmp_path):
    target = _copy_artifact(tmp_path)
    model = next(p for p in target.iterdir() if p.name not in (SUMS, "metadata.json"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(PriorIntegrityError, match="does not match its SHA-256"):
        PopulationPrior.from_directory(target)


def test_tampered_file_with_rewritten_checksums_is_refused_by_the_pin(tmp_path):
    target = _copy_artifact(tmp_path)
    meta = target / "metadata.json"
    meta.write_bytes(meta.read_bytes().replace(b'"version"', b'"version" ', 1))
    lines = []
    for line in (target / SUMS).read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        if name == "metadata.json":
            digest = hashlib.sha256(meta.read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}\n")
    (target / SUMS).write_text("".join(lines))
    PopulationPrior.from_directory(target)  # consistent on its own ...
    with pytest.raises(PriorIntegrityError, match="pinned"):  # ... but not the shipped artifact
        PopulationPrior.from_directory(target, pinned_sums_sha256=SHA256SUMS_DIGEST)


def test_a_missing_file_is_refused(tmp_path):
    target = _copy_artifact(tmp_path)
    (target / "metadata.json").unlink()
    with pytest.raises(PriorIntegrityError, match="missing"):
        PopulationPrior.from_directory(target)


def test_serving_needs_no_torch():
    code = (
        "import sys, numpy as np\n"
        "from mlmodels.core.population import shipped_prior\n"
        "p = shipped_prior()\n"
        "p.predict(np.full((1, 25), 120.0), np.array([0]), 'UTC')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PRIOR_DIR.parents[2])


# ----- the split -----


def test_split_is_deterministic_disjoint_and_order_free():
    subjects = [f"W{i:03d}" for i in range(1, 201)]
    roles = split_subjects("weinstock2016", subjects)
    assert roles == split_subjects("weinstock2016", list(reversed(subjects)))
    counts = pd.Series(roles).value_counts().to_dict()
    assert counts == {"fit": 120, "test": 40, "cal": 20, "val": 20}
    # another corpus ranks its people independently
    assert split_subjects("colas2019", subjects) != roles
    assert set(split_subjects("broll2021", ["Subject 1"]).values()) == {"test"}


def test_metadata_records_the_split_and_no_held_out_person_was_trained_on():
    training = shipped_prior().metadata["training"]
    for corpus, roles in training["split"]["subjects"].items():
        everyone = [s for people in roles.values() for s in people]
        assert len(everyone) == len(set(everyone)), "a person holds two roles"
        expected = split_subjects(corpus, everyone)
        for role, people in roles.items():
            assert all(expected[s] == role for s in people)
        assert roles["test"] and not set(roles["test"]) & (set(roles["fit"]) | set(roles["val"]) | set(roles["cal"]))
    assert training["seed"] == 0


def test_metadata_split_matches_the_corpus_files():
    missing = [name for name in CORPUS_FILES.values() if not (SHARED_DATA / name).exists()]
    if missing:
        pytest.skip(f"corpus files not at {SHARED_DATA}: {', '.join(missing)}")
    training = shipped_prior().metadata["training"]
    for corpus, name in CORPUS_FILES.items():
        subjects = pd.read_csv(SHARED_DATA / name, usecols=["subject"])["subject"].unique()
        roles = split_subjects(corpus, subjects)
        recorded = training["split"]["subjects"][corpus]
        assert sorted(s for s, r in roles.items() if r == "test") == recorded["test"]
        assert sorted(s for s, r in roles.items() if r == "fit") == recorded["fit"]


@pytest.mark.broll
def test_prior_alone_beats_persistence_on_broll(broll_csv_path):
    """Smoke accuracy on people of another study (Broll, never trained on)."""
    data = pd.read_csv(broll_csv_path)
    prior = shipped_prior()
    errors, persist = [], []
    for _, person in data.groupby("subject"):
        readings = pd.DataFrame({"time": pd.to_datetime(person["time"]).dt.tz_localize("UTC"),
                                 "glucose_mg_dl": person["glucose_mg_dl"]})
        grid = prepare_grid(readings)
        windows, _, _ = grid_windows(grid)
        values = grid["glucose_mg_dl"].to_numpy()
        observed = grid["observed"].to_numpy()
        rows = np.flatnonzero(np.isfinite(windows).all(axis=1) & observed)[::6]
        rows = rows[rows + 6 < len(values)]
        actual = np.where(observed[rows + 6], values[rows + 6], np.nan)
        forecast = prior.predict(windows[rows], grid.index.asi8[rows], "UTC")[:, 5]
        ok = np.isfinite(actual)
        errors.append(np.abs(forecast - actual)[ok].mean())
        persist.append(np.abs(values[rows] - actual)[ok].mean())
    assert np.mean(errors) < 0.95 * np.mean(persist)


def test_a_row_forecasts_the_same_alone_and_in_a_batch():
    prior = shipped_prior()
    windows, times = _windows(6, slope=-0.8)
    batch = prior.forecast(windows, times, "America/New_York")
    single = prior.forecast(windows[3:4], times[3:4], "America/New_York")
    for key in batch:
        np.testing.assert_allclose(single[key][0], batch[key][3], rtol=1e-5)


def test_far_horizons_are_offered_only_where_they_beat_the_median():
    prior = shipped_prior()
    with_profile = prior.horizons_for(with_profile=True)
    window_only = prior.horizons_for(with_profile=False)
    assert with_profile[:24] == list(range(5, 121, 5))
    assert set(window_only) <= set(with_profile) <= set(prior.horizons)
    report = prior.metadata["training"]["far_validation_mae"]
    last = str(max(h for h in with_profile))
    if last in report:
        assert report[last]["profile"] < report[last]["tod_median"]


def test_window_summary_is_the_networks_state_per_row():
    prior = shipped_prior()
    windows, times = _windows(3)
    windows[1, 0] = np.nan
    summary = prior.window_summary(windows, times, "UTC")
    assert summary.shape == (3, prior.metadata["short"]["summary_size"])
    assert np.isnan(summary[1]).all() and np.isfinite(summary[[0, 2]]).all()
    assert not np.allclose(summary[0], summary[2])
