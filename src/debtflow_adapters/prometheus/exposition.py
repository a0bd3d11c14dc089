"""The metrics as a scrape sees them."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from debtflow_adapters.prometheus.multiprocess import MULTIPROC_DIR

# Without its charset: Litestar adds that to every text response itself.
CONTENT_TYPE = CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: with ``PROMETHEUS_MULTIPROC_DIR`` the sum over every process
    that wrote there, else this process's own registry."""
    if MULTIPROC_DIR not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render() -> bytes:
    """The metrics in Prometheus' text format (:data:`CONTENT_TYPE`)."""
    return generate_latest(scrape_registry())
