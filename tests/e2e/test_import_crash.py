"""A ``debtflow import`` process killed mid-file, then run again, ends exactly as one clean
import of the same file would: the same accounts, debtors, counts and row errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.imports import placement_text

pytestmark = pytest.mark.postgres

SRC = Path(__file__).parents[2] / "src"
ROWS = 30_000
KILL_AFTER_LINES = 3_000


def debtflow(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "debtflow_adapters.cli", *args],
        env={**os.environ, "PYTHONPATH": str(SRC), "DEBTFLOW_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err + out


@pytest.fixture
async def database(postgres_server) -> str:
    url = await postgres_server.create_database()
    for command in (
        ("migrate",),
        ("create-agency", "--slug", "crashed", "--name", "Crashed"),
        ("create-agency", "--slug", "clean", "--name", "Clean"),
    ):
        finish(debtflow(url, *command))
    return url


def outcome(url: str, slug: str) -> dict[str, list[tuple]]:
    """What an import leaves in an agency, without the ids and times that differ anyway."""
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as db:
        agency = "(SELECT id FROM agencies WHERE slug = %s)"
        return {
            "accounts": db.execute(
                "SELECT a.external_id, d.external_id, a.original_creditor, a.currency,"
                " a.placed_balance, a.current_balance, a.status, a.charge_off_date"
                f" FROM accounts a JOIN debtors d ON d.id = a.debtor_id"
                f" WHERE a.agency_id = {agency} ORDER BY a.external_id",
                [slug],
            ).fetchall(),
            "debtors": db.execute(
                "SELECT external_id, first_name, last_name, address FROM debtors"
                f" WHERE agency_id = {agency} ORDER BY external_id",
                [slug],
            ).fetchall(),
            "runs": db.execute(
                "SELECT status, rows_read, rows_created, rows_updated, rows_failed"
                f" FROM import_runs WHERE agency_id = {agency}",
                [slug],
            ).fetchall(),
            "errors": db.execute(
                "SELECT e.line, e.column, e.reason, e.value FROM import_row_errors e"
                f" JOIN import_runs r ON r.id = e.run_id WHERE r.agency_id = {agency}"
                " ORDER BY e.line",
                [slug],
            ).fetchall(),
        }


def lines_done(url: str) -> int:
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as db:
        row = db.execute("SELECT max(lines_done) FROM import_runs").fetchone()
    return row[0] or 0


def test_a_killed_import_rerun_ends_as_one_clean_import(database: str, tmp_path: Path):
    placement = tmp_path / "placement.csv"
    placement.write_text(placement_text(ROWS, bad_every=97), encoding="utf-8", newline="")

    crashed = debtflow(database, "import", str(placement), "--agency", "crashed")
    deadline = time.monotonic() + 120
    while lines_done(database) < KILL_AFTER_LINES:
        assert crashed.poll() is None, "the import ended before it could be killed"
        assert time.monotonic() < deadline, "no batch was committed within two minutes"
        time.sleep(0.05)
    crashed.send_signal(signal.SIGKILL)
    crashed.wait()
    interrupted = outcome(database, "crashed")
    assert interrupted["runs"][0][0] == "running"
    assert 0 < len(interrupted["accounts"]) < ROWS

    finish(debtflow(database, "import", str(placement), "--agency", "crashed"))
    finish(debtflow(database, "import", str(placement), "--agency", "clean"))

    rerun, clean = outcome(database, "crashed"), outcome(database, "clean")
    assert rerun["runs"] == clean["runs"] == [("partially_failed", ROWS, 29_691, 0, 309)]
    assert rerun == clean
