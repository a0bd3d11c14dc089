"""The worker's entrypoint, ``debtflow_worker.app``, as taskiq's own command lines load it
(``taskiq worker debtflow_worker.app:broker``, ``taskiq scheduler …:scheduler``), in fresh
processes: a setting that is wrong or missing stops it with one JSON line naming the
variable and exit status 2, where it was a traceback (``SettingsError``, or taskiq's
``Inmemory brokers cannot listen`` without a broker URL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src"


def _run(tmp_path: Path, env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    return subprocess.run(
        [sys.executable, *arguments],
        env={**clean, "PYTHONPATH": str(SRC), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _the_one_line(process: subprocess.CompletedProcess[str]) -> str:
    """The message of the one line the process logged, which says it cannot start."""
    assert process.returncode == 2, process.stderr
    [line] = process.stderr.splitlines()
    logged = json.loads(line)
    assert (logged["level"], logged["logger"]) == ("error", "debtflow.worker")
    message: str = logged["message"]
    assert message.startswith("cannot start: ")
    return message.removeprefix("cannot start: ")


BROKER = {"DEBTFLOW_BROKER_URL": "redis://127.0.0.1:6379/15"}


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        (
            {**BROKER, "DEBTFLOW_LOG_LEVEL": "loud"},
            "DEBTFLOW_LOG_LEVEL: 'loud' is not a log level; use one of debug, info, warning, error",
        ),
        ({}, "DEBTFLOW_BROKER_URL is not set: "),
        (
            {**BROKER, "DEBTFLOW_DATABASE_URL": "memory://"},
            "DEBTFLOW_DATABASE_URL: the in-memory store cannot be shared with a worker; ",
        ),
    ],
    ids=["bad-variable", "no-broker", "in-memory-store"],
)
def test_a_worker_process_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, env: dict[str, str], reason: str
) -> None:
    """What each worker process of ``taskiq worker`` does first: import the broker's module."""
    process = _run(tmp_path, env, "-c", "import debtflow_worker.app")

    assert _the_one_line(process).startswith(reason)


def test_taskiq_scheduler_with_a_bad_variable_stops_at_once(tmp_path: Path) -> None:
    process = _run(
        tmp_path,
        {**BROKER, "DEBTFLOW_LOG_LEVEL": "loud"},
        "-m",
        "taskiq",
        "scheduler",
        "debtflow_worker.app:scheduler",
    )

    assert _the_one_line(process).startswith("DEBTFLOW_LOG_LEVEL: 'loud' is not a log level")
