"""The metrics as a scrape sees them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

from debtflow_adapters.prometheus.multiprocess import MULTIPROC_DIR

# Without its charset: Litestar adds that to every text response itself.
CONTENT_TYPE = CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: with ``PROMETHEUS_MULTIPROC_DIR`` the sum over every process
    that wrote there, else this process's own registry."""
    if MULTIPROC_DIR not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    _LiveProcesses(registry)
    return registry


class _LiveProcesses(multiprocess.MultiProcessCollector):
    """The sum over the processes' files, with the live gauges (a breaker's state) of the
    processes that died left out: uvicorn and taskiq replace a worker process that dies,
    and nothing else tells prometheus-client, so a dead one's last state would stand for
    ever. Its counters stay, as what it counted did happen."""

    def collect(self) -> Iterable[Metric]:
        for path in Path(os.environ[MULTIPROC_DIR]).glob("gauge_live*_*.db"):
            pid = int(path.stem.rpartition("_")[2])
            if not _alive(pid):
                multiprocess.mark_process_dead(pid)
        return super().collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's: it exists
    return True


def render() -> bytes:
    """The metrics in Prometheus' text format (:data:`CONTENT_TYPE`)."""
    return generate_latest(scrape_registry())
