"""SAFETY: no user-facing text may diagnose, tell a dose or send anyone to emergency care.

Scanned: every translatable string in the project's Python code (the wording module, pages, API
messages), the insight message templates, every template, the German translations, and real
sample API answers (model, baseline, 24 hours, mmol/L, each error). And the disclaimer is in
every forecast answer.
"""

import ast
import json
import re
from pathlib import Path

import pytest

from predictions import wording
from tests.predictions.conftest import history_rows, recent_readings, register_model

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ["config", "persons", "observations", "mlmodels", "predictions"]

FORBIDDEN = [
    # dosing
    r"\btake\s+\d", r"\b\d+(\.\d+)?\s*(units?|iu|u)\s+(of\s+)?insulin\b", r"\bunits?\s+of\s+insulin\b",
    r"\b(insulin|bolus|correction|basal)\s+(dose|dosing|amount)\b", r"\bdos(e|es|age|ing)\b", r"\binject",
    r"\bbolus\b", r"\b(eat|drink)\s+(\d|some|a\b|more|less|something|fast)", r"\b\d+\s*g(rams?)?\s+(of\s+)?(carbs?|sugar|glucose)\b",
    r"\bglucose tablets?\b", r"\bincrease your\b", r"\breduce your\b", r"\bskip (your|a) (meal|dose)\b",
    # triage
    r"\bemergency\b", r"\burgent(ly)?\b", r"\bimmediately\b", r"\bambulance\b", r"\bhospital\b",
    r"\bcall\s+(911|112|999|an?\s|your\s+(doctor|physician))", r"\bseek\s+(medical|emergency|immediate|urgent|care|help)",
    r"\bgo to (the )?(er|a&e|hospital|emergency)\b", r"\bdangerous(ly)?\b", r"\blife[- ]threatening\b",
    # diagnosis
    r"\bdiagnos", r"\byou (have|suffer from|are at risk of)\s+(type|diabetes|hypo|hyper|pre|a condition)",
    r"\byou are (diabetic|prediabetic|hypoglycemic|hyperglycemic)\b", r"\bsigns? of (diabetes|hypo|hyper)",
    # German
    r"\bnehmen sie\b", r"\beinheiten insulin\b", r"\bdosis\b", r"\bspritz", r"\bnotfall", r"\bnotaufnahme\b",
    r"\bnotarzt\b", r"\brufen sie\b", r"\bsofort\b", r"\bdiagnose\b", r"\bsie haben (diabetes|typ|eine)\b",
    r"\bkrankenhaus\b", r"\bgef(ä|ae)hrlich\b",
]
FORBIDDEN_RE = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN), re.IGNORECASE)

TRANSLATION_CALLS = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext",
                     "pgettext_lazy", "gettext_noop", "format_lazy"}


def offending(texts):
    return [(where, text) for where, text in texts if FORBIDDEN_RE.search(text)]


def test_the_scanner_catches_the_kinds_of_wording_we_forbid():
    bad = [
        "Take 4 units of insulin now", "Seek emergency care", "You have diabetes",
        "Eat 15 g of carbs", "Rufen Sie den Notarzt", "Call 112", "This suggests a diagnosis",
    ]
    assert all(FORBIDDEN_RE.search(text) for text in bad)
    assert not FORBIDDEN_RE.search(str(wording.DISCLAIMER))


def translatable_strings():
    """(file:line, text) of every string literal passed to a gettext-style call."""
    for folder in CODE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in TRANSLATION_CALLS:
                        for arg in node.args:
                            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                                yield f"{path.relative_to(REPO)}:{node.lineno}", arg.value


def test_translatable_strings_and_insight_templates_are_safe():
    texts = list(translatable_strings())
    assert len(texts) > 20  # the scan really found the project's strings
    assert any("predictions/wording.py" in where for where, _ in texts)
    assert offending(texts) == []


def test_every_wording_module_string_is_safe():
    texts = [(f"wording.{name}", str(value)) for name, value in vars(wording).items() if name.isupper()]
    assert ("wording.DISCLAIMER", str(wording.DISCLAIMER)) in texts
    assert offending(texts) == []


def test_templates_are_safe():
    texts = []
    for path in (REPO / "templates").rglob("*.html"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            texts.append((f"{path.relative_to(REPO)}:{number}", line))
    assert texts
    assert offending(texts) == []


def test_translations_are_safe():
    texts = []
    for path in (REPO / "locale").rglob("*.po"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("msgstr") or line.startswith('"'):
                texts.append((f"{path.relative_to(REPO)}:{number}", line))
    assert offending(texts) == []


def test_generated_insights_are_safe():
    from observations.insights.anomalies import anomaly_flags
    from observations.insights.patterns import pattern_statements
    from observations.synthetic import generate_cgm

    texts = []
    for seed, profile in [(1, "t2d"), (2, "t1d"), (3, "t1d")]:
        readings = generate_cgm(21, seed=seed, tz="Europe/Berlin", profile=profile)
        for unit in ("mg/dL", "mmol/L"):
            for item in pattern_statements(readings, "Europe/Berlin", unit=unit) + anomaly_flags(
                readings, "Europe/Berlin", unit=unit
            ):
                texts.append((item["code"], item["text"]))
                texts.append((item["code"], item["template"]))
    assert texts
    assert offending(texts) == []


@pytest.mark.django_db
def test_sample_api_answers_are_safe_and_carry_the_disclaimer(api, person_with_readings, other_person):
    from tests.conftest import token_client

    url = "/api/predictions/glucose/"
    answers = [api.post(url, {}, format="json"), api.post(url, {"range": "24h", "unit": "mmol/L"}, format="json")]
    register_model(person_with_readings)
    answers += [
        api.post(url, {"horizons": [5, 60, 240]}, format="json"),
        api.post(url, {"history": history_rows(recent_readings(hours=3))}, format="json"),
    ]
    assert all(a.status_code == 201 for a in answers)
    for answer in answers:
        assert answer.json()["disclaimer"] == str(wording.DISCLAIMER)
    errors = [
        api.post(url, {"horizons": [7]}, format="json"),
        api.post(url, {"history": [{"effective_at": "x", "value": "y"}]}, format="json"),
        api.post(url, {"range": "1w"}, format="json"),
        token_client(other_person).post(url, {}, format="json"),  # no readings
    ]
    listing = [api.get("/api/predictions/"), api.get(f"/api/predictions/{answers[0].json()['prediction_id']}/")]
    texts = [(f"answer {i}", json.dumps(a.json())) for i, a in enumerate(answers + errors + listing)]
    assert offending(texts) == []


@pytest.mark.django_db
def test_german_answers_are_safe_too(api, person_with_readings):
    answer = api.post("/api/predictions/glucose/", {}, format="json", HTTP_ACCEPT_LANGUAGE="de")
    assert answer.status_code == 201
    assert offending([("de", json.dumps(answer.json(), ensure_ascii=False))]) == []
