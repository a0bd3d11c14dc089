"""GET /metrics after real traffic through the real app: requests by route template, the
domain's metrics after payments, a replay, a 409 (a key left in flight by a crash), a
webhook, an import and an opened breaker, and the tasks the in-process broker ran.
Metrics are process-global, so each check compares two scrapes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from dishka import Provider, Scope, provide
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from debtflow_adapters.gateways.circuit_breaker import CircuitBreakerGateway
from debtflow_adapters.memory import FixedClock
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.ports.payment_gateway import ChargeRequest, ChargeResult
from debtflow_core.ports.telemetry import Telemetry
from debtflow_core.use_cases.imports import IMPORT_PLACEMENT_FILE
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.webhooks import APPLY_GATEWAY_EVENT
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, Tenant, TestAdapters, make_settings
from tests.support.imports import placement_text
from tests.support.stripe_events import SECRET, event, signed

Labels = frozenset[tuple[str, str]]


class Scrape:
    """One scrape of ``/metrics``, parsed: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def since(self, earlier: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - earlier.value(name, **labels)


async def scrape(api: Api) -> Scrape:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


async def test_requests_are_counted_by_route_template_never_by_raw_path(api: Api, alpha: Tenant):
    account = await alpha.account("ACC-1")
    before = await scrape(api)

    for _ in range(3):
        found = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
        assert found.status_code == 200
    missing = await api.client.get(f"/v1/accounts/{uuid.uuid4()}", headers=alpha.headers["admin"])
    nowhere = await api.client.get(f"/no/such/page/{account.id}")
    brewed = await api.client.request("BREW", "/v1/accounts")
    after = await scrape(api)

    assert (missing.status_code, nowhere.status_code) == (404, 404)
    route = {"method": "GET", "route": "/v1/accounts/{account_id}"}
    assert after.since(before, "debtflow_http_requests_total", **route, status="200") == 3
    assert after.since(before, "debtflow_http_requests_total", **route, status="404") == 1
    assert (
        after.since(before, "debtflow_http_request_duration_seconds_count", **route, status="200")
        == 3
    )
    assert (
        after.since(
            before, "debtflow_http_requests_total", method="GET", route="unmatched", status="404"
        )
        == 1
    )
    assert not [labels for _, labels in after.samples if str(account.id) in str(labels)]
    brewing = {"method": "OTHER", "route": "unmatched", "status": "405"}
    assert brewed.status_code == 405
    assert after.since(before, "debtflow_http_requests_total", **brewing) == 1
    assert not [labels for _, labels in after.samples if "BREW" in str(labels)]


class Gateway(SandboxGateway):
    """The sandbox, which can crash mid-charge: the request dies with its key in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.crash = False

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        if self.crash:
            raise RuntimeError("the connection was reset")
        return await super().charge(request)


class FastBreaker(Provider):
    """The product's breaker around the test's gateway, opening after one failure."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self._gateway = gateway

    @provide(scope=Scope.APP, override=True)
    def breaker(self, telemetry: Telemetry) -> CircuitBreakerGateway:
        return CircuitBreakerGateway(
            self._gateway,
            threshold=1,
            reset_seconds=60,
            name=ProcessorKind.SANDBOX,
            telemetry=telemetry,
        )


@pytest.fixture
async def shop(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Api, Tenant, Gateway]]:
    gateway = Gateway()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    settings = make_settings(
        database_url,
        stripe_webhook_secret=SECRET,
        storage_url=f"file://{tmp_path / 'storage'}",
    )
    app = create_app(settings, TestAdapters(clock), FastBreaker(gateway))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        yield api, await api.tenant("alpha"), gateway


async def _until(condition, what: str) -> None:
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


async def test_the_domain_and_its_tasks_show_in_the_metrics(shop):
    api, alpha, gateway = shop
    processor = await api.run(
        AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
    )
    account = await alpha.account("ACC-1", collector="collector", balance=100_000)

    async def pay(key: str, method: str = "pm_card_visa", amount: int = 2_500):
        return await api.client.post(
            "/v1/payments",
            headers={**alpha.headers["collector"], "Idempotency-Key": key},
            json={
                "account_id": str(account.id),
                "amount": amount,
                "currency": "USD",
                "processor_id": str(processor.id),
                "payment_method": method,
            },
        )

    before = await scrape(api)

    assert (await pay("paid")).status_code == 201
    assert (await pay("paid")).headers["idempotent-replayed"] == "true"

    pending = await pay("pending", method="pm_card_processing", amount=500)
    assert pending.status_code == 202
    payment = pending.json()
    body, headers = signed(
        event("payment_intent.succeeded", payment["id"], payment["gateway_reference"]), START
    )
    assert (await api.client.post("/v1/webhooks/stripe", content=body, headers=headers)).json()[
        "new"
    ]

    upload = await api.client.post(
        "/v1/imports",
        files={"file": ("may.csv", placement_text(10, bad_every=5).encode(), "text/csv")},
        headers=alpha.headers["admin"],
    )
    assert upload.status_code == 202, upload.text

    async def applied_and_imported() -> bool:
        now = await scrape(api)
        return all(
            now.since(before, "debtflow_tasks_succeeded_total", task=task) == 1
            for task in (APPLY_GATEWAY_EVENT, IMPORT_PLACEMENT_FILE)
        )

    await _until(applied_and_imported, "the webhook and the import tasks")

    gateway.crash = True
    assert (await pay("crashed")).status_code == 500  # the breaker opens on this failure
    assert (await pay("crashed")).status_code == 409  # its key is still held, in flight
    assert (await pay("refused")).status_code == 503  # the open circuit calls nobody
    ready = (await api.client.get("/ready")).json()
    after = await scrape(api)

    def grew(name: str, **labels: str) -> float:
        return after.since(before, name, **labels)

    sandbox = {"processor": "sandbox"}
    assert grew("debtflow_payments_total", **sandbox, status="completed") == 2
    assert grew("debtflow_payments_total", **sandbox, status="pending") == 1
    assert grew("debtflow_payments_total", **sandbox, status="failed") == 1
    assert grew("debtflow_collected_minor_units_total", currency="USD") == 2_500 + 500
    assert grew("debtflow_idempotent_replays_total", operation="payment") == 1
    assert (
        grew("debtflow_idempotency_conflicts_total", operation="payment", reason="in_flight") == 1
    )
    succeeded = {"type": "payment_intent.succeeded"}
    assert grew("debtflow_webhook_deliveries_total", **succeeded, outcome="new") == 1
    assert grew("debtflow_webhook_events_total", **succeeded, outcome="completed") == 1
    assert grew("debtflow_import_rows_total", outcome="created") == 8
    assert grew("debtflow_import_rows_total", outcome="failed") == 2
    assert grew("debtflow_import_duration_seconds_count", status="partially_failed") == 1
    for task in (APPLY_GATEWAY_EVENT, IMPORT_PLACEMENT_FILE):
        assert grew("debtflow_tasks_started_total", task=task) == 1
        assert grew("debtflow_task_duration_seconds_count", task=task) == 1
    assert (
        grew("debtflow_circuit_breaker_transitions_total", breaker="sandbox", state="opened") == 1
    )
    assert after.value("debtflow_circuit_breaker_state", breaker="sandbox") == 2
    breaker = next(d for d in ready["dependencies"] if d["name"] == "payment_gateway")
    assert (ready["ready"], breaker["state"], breaker["detail"]) == (
        True,
        "down",
        "circuit breaker opened",
    )
