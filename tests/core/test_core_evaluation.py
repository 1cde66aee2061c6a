import numpy as np
import pytest

from mlmodels.core.evaluation import clarke_zone, clarke_zones, coverage, point_metrics

# (reference, predicted, zone) checked by hand against the Clarke grid boundaries
KNOWN_POINTS = [
    (100, 110, "A"),  # within 20%
    (100, 120, "A"),  # on the 20% line
    (60, 65, "A"),  # both below 70
    (200, 60, "E"),  # high read as low
    (60, 200, "E"),  # low read as high
    (100, 215, "C"),  # >= reference + 110
    (150, 20, "C"),  # below 7/5 ref - 182 = 28
    (300, 150, "D"),  # high reference, prediction 70-180
    (50, 100, "D"),  # low reference (< 58.3), prediction 70-180
    (65, 100, "D"),  # 58.3-70 reference, prediction above 6/5 ref
    (100, 130, "B"),  # outside 20%, no dangerous zone
    (250, 190, "B"),
]


@pytest.mark.parametrize("reference,predicted,zone", KNOWN_POINTS)
def test_clarke_zone_known_points(reference, predicted, zone):
    assert clarke_zone(reference, predicted) == zone


def test_vectorised_clarke_matches_scalar_everywhere():
    grid = np.arange(20, 420, 7.0)
    ref, pred = np.meshgrid(grid, grid)
    vector = clarke_zones(ref.ravel(), pred.ravel())
    scalar = [clarke_zone(r, p) for r, p in zip(ref.ravel(), pred.ravel())]
    assert list(vector) == scalar


def test_point_metrics_hand_computed():
    m = point_metrics(np.array([100.0, 200.0]), np.array([110.0, 180.0]))
    assert m["mae"] == 15.0
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2), abs=1e-3)
    assert m["mard"] == pytest.approx((10 / 100 + 20 / 200) / 2 * 100)
    assert m["r2"] == pytest.approx(1 - 500 / 5000)
    assert m["clarke_a"] == 100.0 and m["clarke_ab"] == 100.0


def test_coverage_counts_inside_including_edges():
    assert coverage([1, 2, 3, 4], [0, 2, 4, 0], [2, 2, 5, 3]) == 0.5
