"""``debtflow import``: a placement file into an agency from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.test_cli import Cli, assert_error
from tests.support.imports import HEADER, placement_text


@pytest.fixture
async def fresh_postgres_url(postgres_server) -> str:
    return await postgres_server.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """A migrated database with the agency ``acme``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'debtflow.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    cli = Cli(url)
    assert cli("migrate").status == 0
    assert cli("create-agency --slug acme --name Acme").status == 0
    return cli


def line(name: str, value: str, out: str) -> bool:
    """Whether the summary ``out`` has the row ``name``: ``value``."""
    return re.search(rf"^  {name} +{value}$", out, re.MULTILINE) is not None


def placement(tmp_path: Path, text: str, name: str = "placement.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_import_prints_a_summary_and_the_first_errors(cli, tmp_path):
    path = placement(tmp_path, placement_text(40, bad_every=20))

    outcome = cli(f"import {path} --agency acme")

    assert outcome.status == 0, outcome.err
    assert line("status", "partially_failed", outcome.out)
    assert line("rows read", "40", outcome.out)
    assert line("created", "38", outcome.out)
    assert line("failed", "2", outcome.out)
    assert "Row errors (all of 2):\n  line 21: placed_balance: must be a non-negative" in (
        outcome.out
    )
    again = cli(f"import {path} --agency acme")
    notice, *summary = again.out.split("\n")
    assert re.fullmatch(
        r"placement\.csv holds the content \(sha256 \w{12}\.\.\.\) of an earlier import, "
        r"of placement\.csv on \d{4}-\d\d-\d\d \d\d:\d\d UTC: nothing was imported again\.",
        notice,
    )
    assert summary[1] == outcome.out.split("\n")[1]  # the same run
    assert line("created", "38", again.out)


def test_a_dry_run_writes_nothing(cli, tmp_path):
    path = placement(tmp_path, placement_text(10, bad_every=5).replace(",", ";"))

    dry = cli(f"import {path} --agency acme --dry-run --delimiter ';'")
    real = cli(f"import {path} --agency acme --delimiter ';'")

    assert dry.status == 0, dry.err
    assert dry.out.startswith("Dry run of placement.csv (nothing written):\n")
    assert line("valid", "8", dry.out)
    assert line("created", "8", real.out)


def test_a_failed_import_is_one_line_after_its_summary(cli, tmp_path):
    path = placement(tmp_path, "account_id,first_name\nA-1,Ada\n")

    outcome = cli(f"import {path} --agency acme")

    assert outcome.status == 1
    assert line("status", "failed", outcome.out)
    assert outcome.err == (
        "debtflow: error: the import of placement.csv failed: required columns are "
        "missing: last_name, original_creditor, placed_balance\n"
    )


def test_a_failed_import_run_again_with_another_delimiter_imports_anew(cli, tmp_path):
    path = placement(tmp_path, placement_text(3).replace(",", ";"))
    assert cli(f"import {path} --agency acme").status == 1

    again = cli(f"import {path} --agency acme --delimiter ';'")

    assert again.status == 0, again.err
    assert "nothing was imported again" not in again.out
    assert line("status", "succeeded", again.out)
    assert line("created", "3", again.out)


def test_bad_arguments_are_one_line_errors(cli, tmp_path):
    assert_error(
        cli(f"import {tmp_path / 'nope.csv'} --agency acme"),
        2,
        f"{tmp_path / 'nope.csv'}: no such file",
    )
    assert_error(
        cli(f"import {tmp_path} --agency acme"),
        2,
        f"{tmp_path}: is a directory; give the placement file itself",
    )
    path = placement(tmp_path, HEADER + "\n")
    assert_error(cli(f"import {path} --agency nobody"), 1, "no agency has the slug 'nobody'")
