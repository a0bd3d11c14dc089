"""The Grafana dashboard and the Prometheus configuration against the metrics the app
exports: every metric a panel queries exists, and every metric exported has a panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

# Importing the app and the worker's broker factory declares every metric they export.
import debtflow_http.app  # noqa: F401
from debtflow_adapters.taskiq import make_broker  # noqa: F401

DEPLOY = Path(__file__).parents[2] / "deploy"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def exported() -> dict[str, str]:
    """The app's metric names as queries spell them (counters with ``_total``), by type."""
    names = {}
    for family in REGISTRY.collect():
        if family.name.startswith("debtflow_"):
            suffix = "_total" if family.type == "counter" else ""
            names[family.name + suffix] = family.type
    return names


def queried_metrics(expression: str) -> set[str]:
    """The metric names in a PromQL expression: what is left once strings, label
    matchers, ranges, groupings, functions, keywords and numbers are taken out."""
    bare = _STRING.sub("", expression)
    for pattern in (_MATCHERS, _RANGES, _GROUPING):
        bare = pattern.sub(" ", bare)
    return {name for name in _IDENTIFIER.findall(bare) if name not in _KEYWORDS}


def expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "debtflow.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def as_exported(name: str, metrics: dict[str, str]) -> str:
    """A histogram's series (``_bucket``, ``_sum``, ``_count``) as the histogram's name."""
    for suffix in _HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and metrics.get(base) == "histogram":
            return base
    return name


def test_the_parser_finds_metrics_and_nothing_else():
    assert queried_metrics(
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{status=~"5.."}[5m])))'
        " / ignoring(route) b_total * 60 and on (x) c offset 1h"
    ) == {"a_bucket", "b_total", "c"}


def test_every_metric_the_dashboard_queries_is_exported_and_every_one_is_shown():
    metrics = exported()
    queried = {
        as_exported(name, metrics) for expr in expressions() for name in queried_metrics(expr)
    }

    assert queried - set(metrics) == set()  # nothing the app does not export
    assert set(metrics) - queried == set()  # and no metric left off the dashboard


def test_prometheus_scrapes_every_api_and_worker_replica():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: (job["metrics_path"], names, sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for names in sd["names"]
    }

    assert targets == {
        "debtflow-api": ("/metrics", "api", 8000),
        "debtflow-worker": ("/metrics", "worker", 9100),
    }
