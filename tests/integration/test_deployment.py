"""The deployable stack, read as Docker would read it (Docker itself is not needed): the
Compose topology of ARCHITECTURE.md, one scheduler, migrations before everything that uses
the database, real settings only, secrets only from the environment, health checks, and
Grafana provisioned with the dashboard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.settings import setting_variables

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
SECRET = re.compile(r"PASSWORD|SECRET|_KEY")
REQUIRED = re.compile(r"^(?:[^$]|\$\$)*(?:\$\{[A-Z0-9_]+:\?[^}]*\}(?:[^$]|\$\$)*)+$")
"""A value whose every ``${…}`` is required (``${VAR:?message}``): no default, no literal."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def command(service: dict[str, Any]) -> list[str]:
    return service.get("command", [])


def test_the_topology_of_the_architecture(services):
    assert set(services) == {
        "migrate",
        "api",
        "worker",
        "scheduler",
        "postgres",
        "redis",
        "minio",
        "minio-bucket",
        "prometheus",
        "grafana",
    }
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["minio"]["image"].startswith("minio/minio")
    assert command(services["api"]) == ["serve"]
    assert command(services["worker"])[0] == "worker"
    assert command(services["migrate"]) == ["migrate"]
    # The app's services are one image, built from the repository's Dockerfile.
    for name in ("migrate", "api", "worker", "scheduler"):
        assert services[name]["build"]["context"] == ".."
        assert services[name]["image"] == services["api"]["image"]
    assert (ROOT / "Dockerfile").is_file()


def test_api_and_worker_scale_and_exactly_one_scheduler_runs(services):
    schedulers = [name for name, s in services.items() if command(s)[:1] == ["scheduler"]]
    assert schedulers == ["scheduler"]
    assert services["scheduler"]["deploy"]["replicas"] == 1
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    # Replicas cannot share one host port: the API publishes a range.
    [published] = services["api"]["ports"]
    assert re.fullmatch(r"\$\{API_PORTS:-\d+-\d+\}:8000", published)
    assert services["worker"]["expose"] == ["9100"]
    # Reachable by Prometheus, which scrapes worker:9100 over the stack's network.
    assert services["worker"]["environment"]["DEBTFLOW_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert "DEBTFLOW_DATABASE_URL" in services["worker"]["environment"]


def test_migrations_run_once_before_anything_uses_the_database(services):
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["minio-bucket"] == {
            "condition": "service_completed_successfully"
        }


def test_every_debtflow_variable_is_a_real_setting(compose):
    text = (DEPLOY / "docker-compose.yml").read_text()
    used = set(re.findall(r"\bDEBTFLOW_[A-Z0-9_]*[A-Z0-9]", text))
    assert used, "the stack configures DebtFlow through its variables"
    assert used <= setting_variables()
    app = compose["services"]["api"]["environment"]
    assert {"DEBTFLOW_DATABASE_URL", "DEBTFLOW_BROKER_URL", "DEBTFLOW_JWT_SECRET"} <= set(app)
    assert app["DEBTFLOW_STORAGE_URL"].startswith("s3://")


def test_secrets_come_only_from_the_environment(services):
    checked = 0
    for name, service in services.items():
        for variable, value in service.get("environment", {}).items():
            value = str(value)
            if SECRET.search(variable):
                assert REQUIRED.match(value), f"{name}: {variable} must be ${{VAR:?}}"
                checked += 1
            # URLs with a password in them take it from a required variable too.
            if "@" in value and "://" in value:
                user_info = value.split("://", 1)[1].rsplit("@", 1)[0]
                assert REQUIRED.match(user_info.partition(":")[2]), f"{name}: {variable}"
                checked += 1
    assert checked >= 10


def test_every_server_has_a_health_check_and_one_shot_jobs_disable_the_image_s(services):
    for name in ("api", "worker", "postgres", "redis", "minio", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    # The image checks GET /health, which only the API serves.
    for name in ("migrate", "scheduler", "minio-bucket"):
        assert services[name]["healthcheck"] == {"disable": True}, name
    assert "urlopen('http://127.0.0.1:8000/health'" in " ".join(
        services["api"]["healthcheck"]["test"]
    )
    assert "9100/metrics" in " ".join(services["worker"]["healthcheck"]["test"])
    for name in ("postgres", "redis", "minio"):
        assert services["api"]["depends_on"].get(name, {"condition": "service_healthy"}) == {
            "condition": "service_healthy"
        }


def test_the_image_is_non_root_and_checks_its_health_without_curl():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") == 2  # build stage, then a slim final one
    assert "FROM python:3.11-slim\n" in dockerfile
    assert "\nUSER 10001:10001\n" in dockerfile
    [healthcheck] = re.findall(r"\nHEALTHCHECK ((?:[^\n]*\\\n)*[^\n]*)", dockerfile)
    assert "urllib.request.urlopen" in healthcheck
    assert "/health" in healthcheck
    assert "curl" not in healthcheck


def test_prometheus_and_grafana_are_provisioned_with_the_dashboard(services):
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    grafana = services["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    [dashboard] = [v for v in grafana if v.startswith("./grafana/debtflow.json:")]
    mounted_at = dashboard.split(":")[1]

    sources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    [prometheus] = sources["datasources"]
    assert (prometheus["type"], prometheus["url"]) == ("prometheus", "http://prometheus:9090")
    assert prometheus["isDefault"]

    providers = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/debtflow.yml").read_text()
    )
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert mounted_at.startswith(provider["options"]["path"] + "/")
