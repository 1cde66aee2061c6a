"""Insight texts are observations only: no advice, dosing, triage or diagnosis wording."""

import re
from datetime import datetime, timezone

import numpy as np
import pytest

from observations.insights import anomaly_flags, anomalies, pattern_statements, patterns
from observations.synthetic import generate_cgm

from .series import bump, daily, readings

FORBIDDEN = re.compile(
    r"insulin|\bunits?\b|\bdos(e|es|ing|age)\b|bolus|emergenc|doctor|physician|you have|diagnos"
    r"|should|\bmust\b|\btake\b|\bseek\b|\bcall\b|treat|hypoglyc|hyperglyc|diabet|danger|urgent"
    r"|\brecommend|\badvi[cs]e",
    re.IGNORECASE,
)


def all_templates():
    """Every template string defined by the pattern and anomaly modules."""
    found = []
    for module in (patterns, anomalies):
        for value in vars(module).values():
            if isinstance(value, str) and "%(" in value:
                found.append(value)
            elif isinstance(value, dict):
                found += [v for v in value.values() if isinstance(v, str) and "%(" in v]
    return found


def generated_texts():
    end = datetime(2026, 3, 30, 12, 0, tzinfo=timezone.utc)
    frames = [generate_cgm(14, seed=seed, end=end, profile=profile) for seed in range(4) for profile in ("t2d", "t1d")]
    frames += [
        daily(lambda m, d, w: 120 + bump(m, 8 * 60 + 30, 90, 90) + bump(m, 13 * 60 + 30, 90, 90)
              + bump(m, 20 * 60, 90, 90) + 30 * (w >= 5) + np.where((m >= 120) & (m < 240), -60, 0), noise_sd=5),
        daily(lambda m, d, w: np.where(d == 6, 230, 140), days=10, noise_sd=4),
        readings([140] * 24 + [110, 75, 55, 55, 55, 85, 138] + [140] * 24 + [40, 40, 400, 400], start="2026-01-06 01:00",
                 tz="Europe/Berlin"),
    ]
    texts = []
    for frame in frames:
        for unit in ("mg/dL", "mmol/L"):
            texts += [s["text"] for s in pattern_statements(frame, "Europe/Berlin", unit=unit)]
            texts += [f["text"] for f in anomaly_flags(frame, "Europe/Berlin", unit=unit)]
    return texts


def test_the_template_list_is_complete():
    # 3 meal + dawn + overnight + 2 weekend + 4 lows; 9 anomaly templates
    assert len(all_templates()) == 20


@pytest.mark.parametrize("template", all_templates())
def test_templates_hold_no_advice_dosing_triage_or_diagnosis(template):
    assert not FORBIDDEN.search(template), template


def test_generated_texts_hold_no_advice_dosing_triage_or_diagnosis():
    texts = generated_texts()
    codes_seen = len(set(texts))
    assert codes_seen > 20  # the check ran over many different texts
    for text in texts:
        assert not FORBIDDEN.search(text), text


def test_the_forbidden_pattern_catches_what_it_must():
    for bad in ("Take 4 units of insulin", "You should see a doctor", "Seek emergency care",
                "You have diabetes", "a bolus dose", "this suggests a diagnosis"):
        assert FORBIDDEN.search(bad), bad
