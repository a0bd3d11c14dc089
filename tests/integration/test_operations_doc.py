"""docs/operations.md documents every setting, and only real ones: the list comes from the
settings themselves, so a new variable cannot ship undocumented."""

from __future__ import annotations

import re
from pathlib import Path

from debtflow_core.domain.imports import SOURCE_SECRET_PREFIX
from tests.support.settings import setting_variables, variables_named_in_settings

ROOT = Path(__file__).parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"


def reference_rows() -> dict[str, str]:
    """The configuration reference's rows: variable -> the rest of its row."""
    text = OPERATIONS.read_text()
    section = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(DEBTFLOW_[A-Z0-9_]+)` \|(.+)\|$", section, re.MULTILINE))


def test_every_variable_the_settings_read_has_a_row_with_default_and_meaning():
    rows = reference_rows()
    variables = setting_variables() | variables_named_in_settings()
    assert len(variables) >= 25
    assert sorted(variables - rows.keys()) == []
    for variable in variables:
        default, meaning = (cell.strip() for cell in rows[variable].split(" | ", 1))
        assert default and meaning, variable


def test_the_document_names_no_variable_that_is_not_a_setting():
    named = set(re.findall(r"\bDEBTFLOW_[A-Z0-9_]*[A-Z0-9]", OPERATIONS.read_text()))
    # The file sources' secrets are the operator's own variables, not settings: the
    # document names their prefix (found without its last _) and an example.
    secrets = {name for name in named if f"{name}_".startswith(SOURCE_SECRET_PREFIX)}
    assert secrets
    assert sorted(named - secrets - setting_variables()) == []


def test_the_readme_links_it():
    assert "(docs/operations.md)" in (ROOT / "README.md").read_text()
