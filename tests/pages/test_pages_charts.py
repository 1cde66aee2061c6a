"""Chart geometry (observations.charts) on constructed series: where values land, gaps, bands."""

import numpy as np
import pandas as pd
import pytest

from observations.charts import MARGIN, agp_chart, glucose_chart, sparkline
from observations.insights import agp_profile

NOW = pd.Timestamp("2026-03-02 12:00", tz="UTC")


def _readings(values, *, every_min=5, end=NOW):
    times = pd.date_range(end=end, periods=len(values), freq=f"{every_min}min")
    return pd.DataFrame({"time": times, "glucose_mg_dl": np.asarray(values, dtype=float)})


def _points(path: str) -> list[tuple[str, float, float]]:
    out = []
    for token in path.split():
        command, xy = token[0], token[1:]
        x, y = xy.split(",")
        out.append((command, float(x), float(y)))
    return out


def _forecast(n=24, value=150.0):
    return [
        {"time": NOW + pd.Timedelta(minutes=5 * (i + 1)), "value_mg_dl": value,
         "lower_80_mg_dl": value - 20, "upper_80_mg_dl": value + 20,
         "lower_95_mg_dl": value - 40, "upper_95_mg_dl": value + 40}
        for i in range(n)
    ]


def test_values_land_on_the_target_lines_and_time_axis():
    readings = _readings([70.0] * 36 + [180.0] * 36)
    chart = glucose_chart(readings, start=NOW - pd.Timedelta(hours=6), end=NOW + pd.Timedelta(hours=2),
                          now=NOW, tz="Europe/Berlin", width=760, height=300)
    points = _points(chart["readings_path"])
    assert points[0][2] == pytest.approx(chart["target"]["y"] + chart["target"]["height"], abs=0.11)  # 70: lower edge
    assert points[-1][2] == chart["target"]["y"]  # 180 on the upper edge
    assert chart["now_x"] == points[-1][1]  # the last reading is "now"
    plot_width = 760 - MARGIN["left"] - MARGIN["right"]
    assert chart["now_x"] == pytest.approx(MARGIN["left"] + plot_width * 6 / 8, abs=0.1)
    labels = [tick["label"] for tick in chart["x_ticks"]]
    assert labels[0] == "07:00" and "13:00" in labels  # local time (UTC+1) on the axis
    assert not chart["has_forecast"]


def test_a_gap_breaks_the_line():
    readings = pd.concat([_readings([120.0] * 10, end=NOW - pd.Timedelta(hours=2)), _readings([130.0] * 10)])
    chart = glucose_chart(readings, start=NOW - pd.Timedelta(hours=6), end=NOW, now=NOW, tz="UTC")
    commands = [command for command, _, _ in _points(chart["readings_path"])]
    assert commands.count("M") == 2


def test_forecast_bands_nest_and_start_at_the_last_reading():
    chart = glucose_chart(_readings([150.0] * 72), start=NOW - pd.Timedelta(hours=6),
                          end=NOW + pd.Timedelta(hours=2), now=NOW, tz="UTC", forecast=_forecast())
    band80 = _points(chart["band80_path"].replace(" Z", ""))
    band95 = _points(chart["band95_path"].replace(" Z", ""))
    assert len(band80) == len(band95) == 2 * 25  # anchor + 24 points, upper then lower edge
    tops80, tops95 = [y for _, _, y in band80[1:25]], [y for _, _, y in band95[1:25]]
    assert all(t95 < t80 for t80, t95 in zip(tops80, tops95))  # the 95% band reaches higher
    line = _points(chart["forecast_path"])
    assert (line[0][1], line[0][2]) == (chart["last_point"]["x"], chart["last_point"]["y"])


def test_mmol_ticks_are_round_mmol_numbers():
    chart = glucose_chart(_readings([100.0] * 10), start=NOW - pd.Timedelta(hours=1), end=NOW, now=NOW,
                          tz="UTC", unit="mmol/L")
    assert [tick["label"] for tick in chart["y_ticks"]][:3] == ["4", "6", "8"]
    assert [line["label"] for line in chart["range_lines"]] == ["3.9", "10.0"]


def test_agp_bands_skip_empty_bins():
    times = pd.date_range("2026-03-01", periods=14 * 288, freq="5min", tz="UTC")
    minute = times.hour * 60 + times.minute
    values = 120 + 40 * np.sin(2 * np.pi * minute / 1440) + np.tile(np.linspace(-20, 20, 14), 288)
    readings = pd.DataFrame({"time": times, "glucose_mg_dl": values})
    readings = readings[~((minute >= 600) & (minute < 720))]  # nothing between 10:00 and 12:00
    chart = agp_chart(agp_profile(readings, "UTC"), width=760, height=300)
    assert chart["band_outer_path"].count("M") == 2 and chart["band_inner_path"].count("M") == 2
    assert chart["median_path"].count("M") == 2


def test_sparkline_splits_past_and_what_followed():
    line = sparkline([100.0] * 24, [100.0 + i for i in range(24)], width=180, height=56)
    before, after = _points(line["before_path"]), _points(line["after_path"])
    assert len(before) == 24 and len(after) == 25  # shares the split point
    assert before[-1][1] == after[0][1] == line["split_x"]
