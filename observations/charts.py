"""Geometry of the server-rendered SVG charts (pure Python, no Django): the page templates only
place what is computed here, so charts need no JavaScript, no internet and work in tests.

    glucose_chart(readings, *, start, end, now, tz, unit, forecast=None, treatments=None, width, height) -> dict
    agp_chart(profile, *, unit, width, height) -> dict
    sparkline(before, after, *, width, height) -> dict

Values come in mg/dL; axis labels are in the person's unit. Coordinates are SVG user units
rounded to 0.1.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd

from observations.units import MG_DL, MMOL_L, from_mgdl, mmoll_to_mgdl

RANGE_LOW = 70.0
RANGE_HIGH = 180.0
# A line between readings further apart than this is broken (a gap is shown as a gap).
GAP_MINUTES = 15.0
MARGIN = {"left": 44, "right": 20, "top": 12, "bottom": 28}


def _r(value: float) -> float:
    return round(float(value), 1)


class _Frame:
    """Maps (time, mg/dL) to SVG coordinates inside the plot margins."""

    def __init__(self, *, x0: float, x1: float, y0: float, y1: float, width: int, height: int):
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.width, self.height = width, height
        self.left, self.right = MARGIN["left"], width - MARGIN["right"]
        self.top, self.bottom = MARGIN["top"], height - MARGIN["bottom"]

    def x(self, value: float) -> float:
        return _r(self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left))

    def y(self, mg_dl: float) -> float:
        clamped = min(max(mg_dl, self.y0), self.y1)
        return _r(self.bottom - (clamped - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top))

    def plot(self) -> dict:
        return {"x": self.left, "y": self.top, "right": self.right, "bottom": self.bottom,
                "width": self.right - self.left, "height": self.bottom - self.top,
                "label_x": self.left - 6, "label_y": self.bottom + 18}


def _line_path(points: list[tuple[float, float]], breaks: list[bool] | None = None) -> str:
    """SVG path through points; a new subpath ('M') where breaks[i] is True."""
    parts = []
    for i, (x, y) in enumerate(points):
        command = "M" if i == 0 or (breaks and breaks[i]) else "L"
        parts.append(f"{command}{x},{y}")
    return " ".join(parts)


def _band_path(xs: list[float], lower: list[float], upper: list[float]) -> str:
    if not xs:
        return ""
    top = [f"{x},{y}" for x, y in zip(xs, upper)]
    bottom = [f"{x},{y}" for x, y in zip(reversed(xs), reversed(lower))]
    return "M" + " L".join(top + bottom) + " Z"


def _y_ticks(frame: _Frame, unit: str) -> list[dict]:
    """Round numbers of the person's unit inside the y range, with their labels."""
    if unit == MMOL_L:
        step, values = 2.0, []
        value = math.ceil(frame.y0 / mmoll_to_mgdl(step)) * step
        while mmoll_to_mgdl(value) <= frame.y1:
            values.append((mmoll_to_mgdl(value), f"{value:g}"))
            value += step
    else:
        step = 50.0 if frame.y1 - frame.y0 <= 300 else 100.0
        values = []
        value = math.ceil(frame.y0 / step) * step
        while value <= frame.y1:
            values.append((value, f"{value:g}"))
            value += step
    return [{"y": frame.y(mg), "label": label} for mg, label in values]


def _range_lines(frame: _Frame, unit: str) -> list[dict]:
    return [
        {"y": frame.y(mg), "label": _format(mg, unit), "kind": kind}
        for mg, kind in ((RANGE_LOW, "low"), (RANGE_HIGH, "high"))
    ]


def _format(mg_dl: float, unit: str) -> str:
    value = from_mgdl(mg_dl, unit)
    return f"{value:.1f}" if unit == MMOL_L else f"{value:.0f}"


def _target(frame: _Frame) -> dict:
    top, bottom = frame.y(RANGE_HIGH), frame.y(RANGE_LOW)
    return {"x": frame.left, "y": top, "width": frame.right - frame.left, "height": _r(bottom - top)}


def _epoch_minutes(moment) -> float:
    return pd.Timestamp(moment).timestamp() / 60.0


def glucose_chart(
    readings: pd.DataFrame,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    tz,
    unit: str = MG_DL,
    forecast: list[dict] | None = None,
    width: int = 720,
    height: int = 300,
    x_tick_hours: int = 1,
    treatments: list[dict] | None = None,
) -> dict:
    """Readings (frame time UTC, glucose_mg_dl) from `start` to `now` and the forecast points
    ({time, value_mg_dl, lower/upper_80/95_mg_dl}) up to `end`, with the target range 70-180.

    `treatments` ({time, kind "carbs" or "bolus", title}) are marked in two lanes along the
    bottom of the plot, under the glucose line: meals above, insulin below. Their `title` (the
    words a pointer or screen reader gets) is written by the caller, which knows the language."""
    forecast = forecast or []
    values = list(readings["glucose_mg_dl"]) + [p["upper_95_mg_dl"] for p in forecast]
    lows = list(readings["glucose_mg_dl"]) + [p["lower_95_mg_dl"] for p in forecast]
    y0 = min([40.0] + lows)
    y1 = max([250.0] + [v + 10 for v in values])
    y0, y1 = max(y0, 0.0), min(y1, 420.0)
    frame = _Frame(
        x0=_epoch_minutes(start), x1=_epoch_minutes(end), y0=y0, y1=y1, width=width, height=height
    )
    times = [_epoch_minutes(t) for t in readings["time"]]
    reading_points = [(frame.x(t), frame.y(v)) for t, v in zip(times, readings["glucose_mg_dl"])]
    breaks = [False] + [b - a > GAP_MINUTES for a, b in zip(times, times[1:])]
    chart = {
        "width": width,
        "height": height,
        "plot": frame.plot(),
        "target": _target(frame),
        "y_ticks": _y_ticks(frame, unit),
        "range_lines": _range_lines(frame, unit),
        "x_ticks": _x_ticks(frame, start, end, tz, x_tick_hours),
        "readings_path": _line_path(reading_points, breaks),
        "last_point": {"x": reading_points[-1][0], "y": reading_points[-1][1]} if reading_points else None,
        "now_x": frame.x(_epoch_minutes(now)),
        "has_forecast": bool(forecast),
        "treatment_marks": _treatment_marks(frame, treatments or [], start, now),
    }
    if forecast:
        anchor = [(times[-1], float(readings["glucose_mg_dl"].iloc[-1]))] if times else []
        xs = [frame.x(t) for t, _ in anchor] + [frame.x(_epoch_minutes(p["time"])) for p in forecast]

        def series(key):
            return [frame.y(v) for _, v in anchor] + [frame.y(p[key]) for p in forecast]

        chart.update(
            forecast_path=_line_path(list(zip(xs, series("value_mg_dl")))),
            band80_path=_band_path(xs, series("lower_80_mg_dl"), series("upper_80_mg_dl")),
            band95_path=_band_path(xs, series("lower_95_mg_dl"), series("upper_95_mg_dl")),
        )
    return chart


# The two lanes of treatment marks, in SVG units above the plot's bottom edge.
TREATMENT_LANES = {"carbs": 18, "bolus": 7}


def _treatment_marks(frame: _Frame, treatments: list[dict], start, now) -> list[dict]:
    """Marks for the recorded treatments between `start` and `now` (never a future one)."""
    lo, hi = _epoch_minutes(start), _epoch_minutes(now)
    marks = []
    for treatment in treatments:
        at = _epoch_minutes(treatment["time"])
        if treatment["kind"] not in TREATMENT_LANES or not lo <= at <= hi:
            continue
        marks.append({"x": frame.x(at), "y": _r(frame.bottom - TREATMENT_LANES[treatment["kind"]]),
                      "kind": treatment["kind"], "title": treatment["title"]})
    return marks


def _x_ticks(frame: _Frame, start, end, tz, every_hours: int) -> list[dict]:
    local_start = pd.Timestamp(start).tz_convert(tz)
    tick = local_start.ceil("h")
    while tick.hour % every_hours:
        tick += timedelta(hours=1)
    ticks = []
    end = pd.Timestamp(end)
    while tick <= end:
        ticks.append({"x": frame.x(_epoch_minutes(tick)), "label": tick.strftime("%H:%M")})
        tick = (tick + timedelta(hours=every_hours)).tz_convert(tz)
    return ticks


def agp_chart(profile: pd.DataFrame, *, unit: str = MG_DL, width: int = 720, height: int = 300) -> dict:
    """AGP bands from observations.insights.agp_profile (bin_start_minute, p5..p95): 5-95 and
    25-75 percentile bands and the median by local time of day. Empty bins break the bands."""
    present = profile[profile["n"] > 0]
    highs = list(present["p95"]) or [250.0]
    lows = list(present["p5"]) or [40.0]
    frame = _Frame(
        x0=0, x1=1440, y0=max(min([40.0] + lows), 0.0), y1=min(max([250.0] + [v + 10 for v in highs]), 420.0),
        width=width, height=height,
    )
    bin_minutes = int(profile["bin_start_minute"].iloc[1] - profile["bin_start_minute"].iloc[0]) if len(profile) > 1 else 15
    # Each bin is drawn at its middle; the first and last bins also reach the midnight edges.
    xs = [frame.x(m + bin_minutes / 2) for m in present["bin_start_minute"]]
    segments = _segments(present["bin_start_minute"].tolist(), bin_minutes)

    def band(lower, upper):
        paths = []
        for lo, hi in segments:
            sl = slice(lo, hi)
            paths.append(_band_path(xs[sl], [frame.y(v) for v in present[lower].iloc[sl]],
                                    [frame.y(v) for v in present[upper].iloc[sl]]))
        return " ".join(paths)

    median_points = [(x, frame.y(v)) for x, v in zip(xs, present["p50"])]
    breaks = [False] + [
        b - a > bin_minutes for a, b in zip(present["bin_start_minute"], present["bin_start_minute"].iloc[1:])
    ]
    return {
        "width": width,
        "height": height,
        "plot": frame.plot(),
        "target": _target(frame),
        "y_ticks": _y_ticks(frame, unit),
        "range_lines": _range_lines(frame, unit),
        "x_ticks": [{"x": frame.x(h * 60), "label": f"{h:02d}:00"} for h in range(0, 25, 3)],
        "band_outer_path": band("p5", "p95"),
        "band_inner_path": band("p25", "p75"),
        "median_path": _line_path(median_points, breaks),
        "has_data": not present.empty,
    }


def _segments(minutes: list[int], bin_minutes: int) -> list[tuple[int, int]]:
    """Index ranges of consecutive bins (a band is not drawn across empty bins)."""
    if not minutes:
        return []
    segments, start = [], 0
    for i in range(1, len(minutes)):
        if minutes[i] - minutes[i - 1] > bin_minutes:
            segments.append((start, i))
            start = i
    segments.append((start, len(minutes)))
    return segments


def sparkline(before: list[float], after: list[float], *, width: int = 180, height: int = 56) -> dict:
    """A small line of a past window (solid) and what followed it (dashed), 5 minutes apart."""
    values = list(before) + list(after)
    pad = 3
    lo, hi = min(values + [RANGE_LOW]), max(values + [RANGE_HIGH])
    n = len(values)

    def x(i):
        return _r(pad + i / max(n - 1, 1) * (width - 2 * pad))

    def y(v):
        return _r(height - pad - (v - lo) / max(hi - lo, 1) * (height - 2 * pad))

    split = len(before) - 1
    return {
        "width": width,
        "height": height,
        "before_path": _line_path([(x(i), y(v)) for i, v in enumerate(before)]),
        "after_path": _line_path([(x(i), y(v)) for i, v in enumerate(values) if i >= split]),
        "split_x": x(split),
        "target": {"y": y(RANGE_HIGH), "height": _r(y(RANGE_LOW) - y(RANGE_HIGH)), "width": width},
    }
