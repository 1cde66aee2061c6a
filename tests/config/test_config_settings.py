"""Every GLUCAST_* setting is declared once, in config/settings.py, settable from the environment
variable of the same name, and the settings table of docs/configuration.md lists exactly those
settings: each in a row of its own (first column), and no other GLUCAST_* name anywhere in it."""

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO / "config" / "settings.py"
CONFIGURATION_DOC = REPO / "docs" / "configuration.md"
SETTINGS_HEADING = "## Settings"
OTHER_VARIABLES_HEADING = "## Other environment variables"
NAME = re.compile(r"\bGLUCAST_[A-Z0-9_]+\b")
APPS = ("config", "persons", "observations", "mlmodels", "predictions")


def declared_settings() -> set[str]:
    module = importlib.import_module("config.settings")
    return {name for name in vars(module) if name.startswith("GLUCAST_")}


def table_rows(heading: str) -> list[list[str]]:
    """The cells of every body row of the table(s) under `heading` in docs/configuration.md, up to
    the next heading of the same or a higher level."""
    text = CONFIGURATION_DOC.read_text(encoding="utf-8")
    assert f"\n{heading}\n" in text, f"docs/configuration.md has no section {heading!r}"
    section = text.split(f"\n{heading}\n", 1)[1]
    section = re.split(r"\n#{1,2} ", section, maxsplit=1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]
    body = [row for row in cells[1:] if not all(set(cell) <= set("-: ") for cell in row)]
    assert body, f"no table under {heading!r} in docs/configuration.md"
    return body


def listed_settings() -> set[str]:
    """Settings that have a row of their own: named in the table's first column."""
    return {name for row in table_rows(SETTINGS_HEADING) for name in NAME.findall(row[0])}


def named_in_settings_table() -> set[str]:
    """Every GLUCAST_* name anywhere in the settings table, meanings and defaults included."""
    return {name for row in table_rows(SETTINGS_HEADING) for cell in row for name in NAME.findall(cell)}


def test_every_declared_setting_has_a_row_in_the_settings_table():
    missing = declared_settings() - listed_settings()
    assert not missing, f"docs/configuration.md's settings table lacks a row for {sorted(missing)}"


def test_every_setting_in_the_settings_table_is_declared():
    unknown = named_in_settings_table() - declared_settings()
    assert not unknown, (
        f"docs/configuration.md's settings table names settings config/settings.py lacks: {sorted(unknown)}"
    )


def test_every_row_of_the_settings_table_has_a_default_and_a_meaning():
    for row in table_rows(SETTINGS_HEADING):
        assert len(row) == 3 and all(row), f"a settings row needs variable, default and meaning: {row}"


def test_other_environment_variables_are_not_settings():
    other = {name for row in table_rows(OTHER_VARIABLES_HEADING) for name in NAME.findall(row[0])}
    declared = other & declared_settings()
    assert not declared, f"{sorted(declared)} are settings: list them in the settings table instead"


def test_every_setting_is_read_from_its_environment_variable_with_a_comment():
    source = SETTINGS_FILE.read_text(encoding="utf-8").splitlines()
    for name in sorted(declared_settings()):
        lines = [i for i, line in enumerate(source) if line.startswith(f"{name} = ")]
        assert len(lines) == 1, f"{name} must be declared once (found {len(lines)})"
        i = lines[0]
        assert f'"{name}"' in source[i], f"{name} is not read from the environment variable {name}"
        assert source[i - 1].lstrip().startswith("#"), f"{name} needs a one-line comment above it"


def test_no_code_keeps_a_default_of_its_own():
    offenders = []
    for app in APPS:
        for path in (REPO / app).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if re.search(r'getattr\(\s*settings\s*,\s*"GLUCAST_', text):
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"read settings.GLUCAST_* directly (the default lives in config/settings.py): {offenders}"
