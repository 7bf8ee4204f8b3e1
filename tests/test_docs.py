"""docs/configuration.md's table stays true to the settings model; the README starts with the two commands."""

from __future__ import annotations

import re
from pathlib import Path

from lcstream.config.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
CONFIGURATION = README.parent / "docs" / "configuration.md"


def test_every_setting_is_in_the_configuration_table_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `(LCSTREAM_[A-Z0-9_]+)` \|", CONFIGURATION.read_text(), re.MULTILINE))
    settings = {f"LCSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert documented == settings


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text().split("## ", 1)[0]
    assert "make demo" in head and "make test" in head
    ci = (README.parent / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"
