"""Treatment features: oref0's insulin curve by hand, carbs on board, causality, linear cost."""

import time

import numpy as np
import pytest

from mlmodels.core.treatments import (
    TREATMENT_FEATURES,
    Treatments,
    bilinear_cob,
    exponential_activity,
    exponential_iob,
    linear_cob,
    treatment_features,
)

MIN = 60 * 10**9
T0 = 1_700_000_000 * 10**9 // (5 * MIN) * (5 * MIN)


def grid(hours: float, start=T0):
    return start + np.arange(int(hours * 12) + 1) * 5 * MIN


def col(name):
    return TREATMENT_FEATURES.index(name)


def test_exponential_curve_matches_oref0_by_hand():
    # peak 75, duration 360 min: tau = 75 (1 - 75/360) / (1 - 150/360) = 101.786, a = 0.56548,
    # S = 1 / (1 - a + (1 + a) exp(-360/tau)) = 2.0829; iob(75) = 0.6943 (worked by hand).
    assert exponential_iob(75, 75, 360) == pytest.approx(0.69428, abs=2e-4)
    assert exponential_iob(0) == 1.0 and exponential_iob(360) == 0.0 and exponential_iob(400) == 0.0
    t = np.linspace(0, 360, 36_001)
    assert np.trapezoid(exponential_activity(t), t) == pytest.approx(1.0, abs=1e-6)
    # iob is 1 minus the integrated activity; the activity peaks at the peak time
    assert 1 - exponential_iob(60) == pytest.approx(np.trapezoid(exponential_activity(t[t <= 60]), t[t <= 60]), abs=1e-6)
    assert abs(t[np.argmax(exponential_activity(t, 55, 360))] - 55) < 0.1
    with pytest.raises(ValueError):
        exponential_iob(10, 200, 360)  # a peak past half the duration has no such curve


def test_carb_absorption_curves():
    assert list(linear_cob([0, 90, 180, 240], 180)) == [1.0, 0.5, 0.0, 0.0]
    assert list(bilinear_cob([0, 45, 90, 135, 180], 180)) == [1.0, 0.875, 0.5, 0.125, 0.0]


def test_one_bolus_and_one_meal_by_hand():
    times = grid(8)
    tr = Treatments(insulin_ns=[T0 + 60 * MIN], insulin_units=[4.0], carbs_ns=[T0 + 60 * MIN], carbs_g=[60.0])
    X = treatment_features(times, tr)
    at = {int((t - T0) // MIN): i for i, t in enumerate(times)}
    # before the treatments nothing; at the bolus the whole dose is on board
    before = np.delete(X[at[55]], col("minutes_since_meal"))
    assert np.all(before == 0) and X[at[55], col("minutes_since_meal")] == 360.0  # capped: none yet
    assert X[at[60], col("iob_p100")] == pytest.approx(4.0)
    # 75 minutes after: 4 U x 0.6943 still on board; the next 60 min act 4 x (iob(75) - iob(135))
    assert X[at[135], col("iob_p100")] == pytest.approx(4 * 0.69428, abs=1e-3)
    assert X[at[135], col("insulin_next_60min_p100")] == pytest.approx(
        4 * (exponential_iob(75) - exponential_iob(135)), abs=1e-9)
    # a faster curve (peak x0.7) has less left
    assert X[at[135], col("iob_p70")] < X[at[135], col("iob_p100")] < X[at[135], col("iob_p150")]
    # carbs: 90 minutes after, linear 3 h absorption leaves half; the next 30 min absorb 10 g
    assert X[at[150], col("cob_a180")] == pytest.approx(30.0)
    assert X[at[150], col("carbs_next_30min_a180")] == pytest.approx(10.0)
    assert X[at[150], col("cob_bilinear")] == pytest.approx(30.0)
    assert X[at[150], col("minutes_since_meal")] == 90.0
    assert X[at[150], col("carbs_last_3h")] == 60.0
    assert X[at[300], col("carbs_last_3h")] == 0.0 and X[at[300], col("minutes_since_meal")] == 240.0
    assert X[at[150], col("treatments_logged_24h")] == 1.0 and X[at[30], col("treatments_logged_24h")] == 0.0


def test_treatment_between_slots_counts_from_the_next_one():
    times = grid(2)
    tr = Treatments(insulin_ns=[T0 + 62 * MIN], insulin_units=[1.0])
    X = treatment_features(times, tr)
    assert X[12, col("iob_p100")] == 0.0  # 60 min: the 62-minute bolus is in the future
    assert X[13, col("iob_p100")] == pytest.approx(1.0)


def test_temp_basal_counts_as_deviation_from_the_usual_rate():
    times = grid(6)
    # usual 1 U/h; a 30-minute temp basal at 3 U/h = +1 U; a 60-minute suspension = -1 U
    tr = Treatments(basal_ns=[T0, T0 + 60 * MIN, T0 + 90 * MIN, T0 + 180 * MIN, T0 + 240 * MIN],
                    basal_rate_u_h=[1.0, 3.0, 1.0, 0.0, 1.0], basal_minutes=[60, 30, 90, 60, 120])
    X = treatment_features(times, tr, reference_basal_u_h=1.0)
    # at 90 minutes: the +1 U was delivered over the last 30 min (slots 65..90), partly absorbed
    assert 0.85 < X[18, col("basal_iob_net")] <= 1.0
    assert X[12, col("basal_iob_net")] == 0.0
    # after the suspension net basal insulin on board is below that (the +1 U minus about 1 U)
    assert X[48, col("basal_iob_net")] < X[30, col("basal_iob_net")]
    assert Treatments(basal_ns=[T0, T0 + 60 * MIN], basal_rate_u_h=[0.8, 1.2],
                      basal_minutes=[60, 180]).median_basal_u_h() == 1.2


def test_features_are_causal():
    """The features at an origin do not change when treatments after it are added or removed."""
    rng = np.random.default_rng(3)
    times = grid(48)
    ins = np.sort(rng.integers(0, 48 * 60, 40)) * MIN + T0
    carbs = np.sort(rng.integers(0, 48 * 60, 15)) * MIN + T0
    tr = Treatments(insulin_ns=ins, insulin_units=rng.uniform(0.5, 8, 40), carbs_ns=carbs,
                    carbs_g=rng.uniform(5, 90, 15), steps_ns=times, steps=rng.integers(0, 500, len(times)))
    full = treatment_features(times, tr, reference_basal_u_h=1.0)
    for i in (100, 300, 500):
        cut = tr.before(int(times[i]))
        part = treatment_features(times[: i + 1], cut, reference_basal_u_h=1.0)
        np.testing.assert_allclose(part[i], full[i], atol=1e-9)
        # and one origin alone (serving) gives the same numbers as the whole grid (training)
        np.testing.assert_allclose(treatment_features(times[i: i + 1], cut, reference_basal_u_h=1.0)[0], full[i],
                                   atol=1e-9)


def test_no_treatments_gives_zeros_and_meals_without_grams_are_events():
    times = grid(3)
    empty = treatment_features(times, None)
    assert not np.delete(empty, col("minutes_since_meal"), axis=1).any()
    assert (empty[:, col("minutes_since_meal")] == 360.0).all()
    X = treatment_features(times, Treatments(carbs_ns=[T0 + 30 * MIN], carbs_g=[np.nan]))
    assert X[12, col("cob_a180")] == 0.0 and X[12, col("minutes_since_meal")] == 30.0
    assert X[12, col("meals_on_board")] == pytest.approx(1 - 30 / 180)


def test_cost_is_linear_in_the_span():
    rng = np.random.default_rng(0)

    def run(days):
        times = grid(24 * days)
        n = 10 * days
        tr = Treatments(insulin_ns=T0 + rng.integers(0, days * 1440, n) * MIN, insulin_units=np.ones(n),
                        carbs_ns=T0 + rng.integers(0, days * 1440, n) * MIN, carbs_g=np.full(n, 30.0))
        started = time.perf_counter()
        treatment_features(times, tr)
        return time.perf_counter() - started

    run(2)
    # big enough that fixed costs and a busy machine's noise do not dominate; quadratic would be 64x
    small, large = min(run(20) for _ in range(5)), min(run(160) for _ in range(5))
    assert large < 8 * small * 3  # 8x the data


def test_delivered_basal_is_the_schedule_with_temporary_basals_over_it():
    from mlmodels.core.treatments import delivered_basal

    # schedule 1.0 from 0, 2.0 from 120 min (holds 24 h at most); temp 0 U/h for 30 min at 60,
    # temp 3 U/h for 60 min at 150 cut short by a temp 1.5 at 180 for 30 min
    start, rate, minutes = delivered_basal(
        [T0, T0 + 120 * MIN], [1.0, 2.0],
        [T0 + 60 * MIN, T0 + 150 * MIN, T0 + 180 * MIN], [0.0, 3.0, 1.5], [30, 60, 30])
    got = [(int((s - T0) // MIN), r, m) for s, r, m in zip(start, rate, minutes)]
    assert got[:6] == [(0, 1.0, 60), (60, 0.0, 30), (90, 1.0, 30), (120, 2.0, 30), (150, 3.0, 30), (180, 1.5, 30)]
    assert got[6] == (210, 2.0, 24 * 60 - 90)


def test_from_the_stored_frame():
    import pandas as pd

    frame = pd.DataFrame({
        "time": pd.to_datetime([T0, T0 + 10 * MIN, T0 + 20 * MIN, T0 + 30 * MIN, T0 + 40 * MIN], utc=True),
        "kind": ["bolus", "bolus", "carbs", "steps", "heart_rate"],
        "amount": [2.0, 10.0, 45.0, 300.0, 80.0],
        "unit": ["U", "U", "g", "{steps}", "/min"],
        "duration_min": [np.nan, np.nan, np.nan, 15.0, np.nan],
        "insulin_kind": ["ultra_rapid", "long_acting", None, None, None],
        "bolus_type": ["meal", None, None, None, None],
        "absorption_min": [np.nan] * 5,
    })
    tr = Treatments.from_frame(frame)
    assert list(tr.insulin_units) == [2.0] and list(tr.insulin_kind) == ["ultra_rapid"]  # long-acting: not used
    assert list(tr.carbs_g) == [45.0] and list(tr.steps_ns) == [T0 + 45 * MIN]
    assert Treatments.from_frame(frame.iloc[:0]).latest_ns() is None
