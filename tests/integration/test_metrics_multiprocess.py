"""Metrics summed over processes (prometheus-client's multiprocess mode), as a server or a
worker with several processes serves them. Each case runs in processes of its own: the
mode is chosen when prometheus-client is imported, which this test process did without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

SRC = Path(__file__).parents[2] / "src"

SCRAPE = """
import subprocess, sys
from debtflow_adapters.prometheus.exposition import render
from debtflow_adapters.prometheus.metrics import BREAKER_STATE, BREAKER_TRANSITIONS

BREAKER_STATE.labels("alive").set(0)
child = (
    "from debtflow_adapters.prometheus.metrics import BREAKER_STATE, BREAKER_TRANSITIONS;"
    "BREAKER_STATE.labels('died').set(2);"
    "BREAKER_TRANSITIONS.labels('died', 'opened').inc()"
)
subprocess.run([sys.executable, "-c", child], check=True)
sys.stdout.write(render().decode())
"""


def test_a_dead_processs_breaker_state_is_dropped_and_its_counts_kept(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    scraped = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=env, check=True, capture_output=True, text=True
    ).stdout

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    states = {
        dict(labels)["breaker"]: value
        for (name, labels), value in samples.items()
        if name == "debtflow_circuit_breaker_state"
    }
    assert states == {"alive": 0}
    died = (("breaker", "died"), ("state", "opened"))
    assert samples["debtflow_circuit_breaker_transitions_total", died] == 1
