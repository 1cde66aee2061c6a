"""Every GLUCAST_* setting is declared once, in config/settings.py, settable from the environment
variable of the same name, and README's configuration table lists exactly those settings."""

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO / "config" / "settings.py"
NAME = re.compile(r"\bGLUCAST_[A-Z0-9_]+\b")
APPS = ("config", "persons", "observations", "mlmodels", "predictions")


def declared_settings() -> set[str]:
    module = importlib.import_module("config.settings")
    return {name for name in vars(module) if name.startswith("GLUCAST_")}


def readme_table_names() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Configuration", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return {name for row in rows for name in NAME.findall(row)}


def test_every_declared_setting_is_in_the_readme_table():
    missing = declared_settings() - readme_table_names()
    assert not missing, f"README's configuration table lacks {sorted(missing)}"


def test_every_setting_in_the_readme_table_is_declared():
    unknown = readme_table_names() - declared_settings()
    assert not unknown, f"README's configuration table names settings config/settings.py lacks: {sorted(unknown)}"


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
