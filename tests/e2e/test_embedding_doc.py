"""docs/embedding.md stays true: each of its Python blocks runs as written and prints what
the ``text`` block after it shows.

Each block runs as a program of its own (it calls ``asyncio.run``, which cannot run inside
pytest's event loop), in an empty directory; all blocks start at once to keep this quick.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "embedding.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


class Example(NamedTuple):
    code: str
    expected_output: str | None


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def _examples() -> list[Example]:
    """The doc's ``python`` blocks, each with the ``text`` block right after it, if any."""
    blocks = _FENCE.findall(DOC.read_text())
    return [
        Example(code, following[1] if following and following[0] == "text" else None)
        for (language, code), following in zip(blocks, [*blocks[1:], None], strict=True)
        if language == "python"
    ]


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    processes = []
    for number, example in enumerate(EXAMPLES, start=1):
        directory = tmp_path_factory.mktemp(f"example-{number}")
        script = directory / "example.py"
        script.write_text(example.code)
        processes.append(
            subprocess.Popen(
                [sys.executable, script.name],
                cwd=directory,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        results.append(Run(process.returncode, stdout, stderr))
    return results


def test_the_doc_has_the_three_wirings() -> None:
    assert len(EXAMPLES) == 3
    assert all(example.expected_output for example in EXAMPLES)


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=lambda i: f"example-{i + 1}")
def test_example_runs_and_prints_what_the_doc_shows(runs: list[Run], index: int) -> None:
    run = runs[index]

    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout == EXAMPLES[index].expected_output
