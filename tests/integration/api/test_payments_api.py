"""POST /v1/payments end to end: outcomes, idempotency, holds under concurrency, outages."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from dishka import Provider, Scope, provide
from litestar.testing import AsyncTestClient

from debtflow_adapters.gateways.circuit_breaker import CircuitBreakerGateway
from debtflow_adapters.memory import FixedClock
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.errors import GatewayRefused, GatewayUnavailable
from debtflow_core.ports.payment_gateway import (
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
    RefundResult,
)
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.payments import SettlePendingRefunds
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, TestAdapters, make_settings


class Gateway(SandboxGateway):
    """The sandbox, counting real charges per key, and able to act as an open breaker or
    as Stripe refusing a refund."""

    def __init__(self) -> None:
        super().__init__()
        self.charged: Counter[str] = Counter()
        self.breaker_open = False
        self.refusing_refunds = False
        self.calls = 0

    async def refund(self, request: RefundRequest) -> RefundResult:
        if self.refusing_refunds:
            raise GatewayRefused("the payment gateway refused the refund (charge_already_refunded)")
        return await super().refund(request)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.calls += 1
        if self.breaker_open:
            raise GatewayUnavailable("circuit open", retry_after_seconds=30, request_sent=False)
        result = await super().charge(request)
        self.charged[request.idempotency_key] += 1
        return result


class GatewayOverride(Provider):
    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self._gateway = gateway

    @provide(scope=Scope.APP, override=True)
    def gateway(self) -> PaymentGateway:
        return self._gateway


@pytest.fixture
async def shop(database_url):
    gateway = Gateway()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(make_settings(database_url), TestAdapters(clock), GatewayOverride(gateway))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        processor = await api.run(
            AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
        )
        account = await alpha.account("ACC-1", collector="collector", balance=10_000)
        yield api, alpha, gateway, processor, account


def body(account, processor, amount=2_500, method="pm_card_visa", **extra) -> dict:
    return {
        "account_id": str(account.id),
        "amount": amount,
        "currency": "USD",
        "processor_id": str(processor.id),
        "payment_method": method,
        **extra,
    }


async def pay(api, alpha, key, payload, role="collector"):
    headers = {**alpha.headers[role], "Idempotency-Key": key}
    return await api.client.post("/v1/payments", headers=headers, json=payload)


async def balance(api, alpha, account) -> int:
    response = await api.client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
    return response.json()["current_balance"]


async def test_outcomes_are_201_402_and_202(shop):
    api, alpha, _, processor, account = shop
    done = await pay(api, alpha, "a", body(account, processor))
    assert done.status_code == 201
    assert done.json()["status"] == "completed"
    declined = await pay(
        api, alpha, "b", body(account, processor, method="pm_card_chargeDeclinedExpiredCard")
    )
    assert declined.status_code == 402
    assert (declined.json()["status"], declined.json()["failure_code"]) == (
        "failed",
        "expired_card",
    )
    pending = await pay(api, alpha, "c", body(account, processor, method="pm_card_processing"))
    assert pending.status_code == 202
    assert pending.json()["status"] == "pending"
    assert await balance(api, alpha, account) == 10_000 - 2_500 - 2_500


async def test_a_key_replays_its_first_answer_and_refuses_another_body(shop):
    api, alpha, gateway, processor, account = shop
    first = await pay(api, alpha, "same", body(account, processor))
    again = await pay(api, alpha, "same", body(account, processor))
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert sum(gateway.charged.values()) == 1
    location = f"/v1/payments/{first.json()['id']}"
    assert first.headers["location"] == again.headers["location"] == location
    other = await pay(api, alpha, "same", body(account, processor, amount=100))
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    missing = await api.client.post(
        "/v1/payments", headers=alpha.headers["collector"], json=body(account, processor)
    )
    assert missing.status_code == 400


async def test_card_numbers_are_refused_wherever_they_are_and_never_stored(shop):
    api, alpha, gateway, processor, account = shop
    requests = [
        (str(uuid.uuid4()), body(account, processor, method="4242424242424242")),
        (str(uuid.uuid4()), body(account, processor, method="pm_4242424242424242")),
        (str(uuid.uuid4()), body(account, processor, method="4242.4242.4242.4242")),
        (str(uuid.uuid4()), body(account, processor, note="card 4000 0566 5566 5556")),
        (str(uuid.uuid4()), {**body(account, processor), "5555555555554444": "x"}),
        (str(uuid.uuid4()), {**body(account, processor), "note": 4111111111111111}),
        ("4242424242424242", body(account, processor)),
        ("order_4242424242424242", body(account, processor)),
    ]
    for key, payload in requests:
        response = await pay(api, alpha, key, payload)
        assert response.status_code == 422
        assert "4242" not in response.text and "5556" not in response.text
        assert "5555555555554444" not in response.text
    listed = await api.client.get("/v1/payments", headers=alpha.headers["admin"])
    assert listed.json()["items"] == []
    assert not gateway.charged


async def test_a_refund_with_a_card_number_is_refused_and_never_echoed(shop):
    api, alpha, _, processor, account = shop
    paid = (await pay(api, alpha, "paid", body(account, processor))).json()
    refunds = f"/v1/payments/{paid['id']}/refunds"
    for key, payload in [
        ("r1", {"4242424242424242": 1}),
        ("r2", {"amount": 100, "note": "4242 4242 4242 4242"}),
        ("4242424242424242", {"amount": 100}),
    ]:
        headers = {**alpha.headers["admin"], "Idempotency-Key": key}
        response = await api.client.post(refunds, json=payload, headers=headers)
        assert response.status_code == 422
        assert "4242" not in response.text
    payment = await api.client.get(f"/v1/payments/{paid['id']}", headers=alpha.headers["admin"])
    assert payment.json()["refunded_amount"] == 0


async def test_an_amount_written_as_a_string_is_refused_and_nothing_charged(shop):
    api, alpha, gateway, processor, account = shop
    response = await pay(api, alpha, "text", {**body(account, processor), "amount": "2500"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["amount"]
    assert not gateway.charged
    assert await balance(api, alpha, account) == 10_000


async def test_a_card_number_behind_json_escapes_is_refused_too(shop):
    api, alpha, gateway, _, account = shop
    escaped = "\\u0034242 4242 4242 4242"  # "4242 4242 4242 4242", its first digit escaped
    response = await api.client.post(
        "/v1/payments",
        content=f'{{"account_id": "{account.id}", "note": "{escaped}"}}',
        headers={**alpha.headers["admin"], "Idempotency-Key": "escaped"},
    )
    assert response.status_code == 422
    assert "4242" not in response.text
    assert not gateway.charged


async def test_fifty_concurrent_requests_with_one_key_charge_once(shop):
    api, alpha, gateway, processor, account = shop
    gateway.latency = 0.02
    responses = await asyncio.gather(
        *(pay(api, alpha, "burst", body(account, processor)) for _ in range(50))
    )
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert statuses[201] >= 1
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    assert sum(gateway.charged.values()) == 1
    assert await balance(api, alpha, account) == 7_500


async def test_concurrent_payments_never_overdraw_the_account(shop):
    api, alpha, gateway, processor, account = shop
    gateway.latency = 0.005
    responses = await asyncio.gather(
        *(pay(api, alpha, f"k{n}", body(account, processor, amount=700)) for n in range(50))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 14, 422: 36}
    completed = sum(
        p["amount"]
        for p in (
            await api.client.get(
                "/v1/payments", headers=alpha.headers["admin"], params={"limit": 200}
            )
        ).json()["items"]
        if p["status"] == "completed"
    )
    assert await balance(api, alpha, account) == 10_000 - completed == 200


async def test_an_open_breaker_is_a_503_with_retry_after_and_the_key_stays_usable(shop):
    api, alpha, gateway, processor, account = shop
    gateway.breaker_open = True
    refused = await pay(api, alpha, "later", body(account, processor))
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "30"
    assert await balance(api, alpha, account) == 10_000
    gateway.breaker_open = False
    assert (await pay(api, alpha, "later", body(account, processor))).status_code == 201


async def test_payments_are_listed_and_read_within_reach(shop):
    api, alpha, _, processor, account = shop
    made = (await pay(api, alpha, "x", body(account, processor))).json()
    for role in ("admin", "collector", "readonly"):
        one = await api.client.get(f"/v1/payments/{made['id']}", headers=alpha.headers[role])
        assert one.json() == made
    assert (
        await api.client.get(f"/v1/payments/{made['id']}", headers=alpha.headers["colleague"])
    ).status_code == 404
    by_account = await api.client.get(
        "/v1/payments", headers=alpha.headers["admin"], params={"account_id": str(account.id)}
    )
    assert [p["id"] for p in by_account.json()["items"]] == [made["id"]]
    nested = await api.client.get(
        f"/v1/accounts/{account.id}/payments", headers=alpha.headers["collector"]
    )
    assert nested.json() == by_account.json()
    assert (
        await pay(api, alpha, "ro", body(account, processor), role="readonly")
    ).status_code == 403


async def test_a_payment_out_of_reach_is_answered_like_a_missing_one(shop):
    api, alpha, _, processor, account = shop
    made = (await pay(api, alpha, "x", body(account, processor))).json()
    missing = str(uuid.uuid4())
    colleague = {**alpha.headers["colleague"], "Idempotency-Key": "refund"}

    def shape(response, payment_id: str) -> tuple[int, str]:
        return response.status_code, response.text.replace(payment_id, "{id}")

    for method, path in [("GET", "/v1/payments/{}"), ("POST", "/v1/payments/{}/refunds")]:
        theirs, nobodys = [
            await api.client.request(method, path.format(payment_id), headers=colleague, json={})
            for payment_id in (made["id"], missing)
        ]
        assert shape(theirs, made["id"]) == shape(nobodys, missing)
        assert theirs.status_code == 404
        assert theirs.json()["detail"] == f"payment {made['id']} was not found"


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test's own, so that stopping it harms no other test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as attempt:
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", server
    server.kill()
    server.wait()


async def test_redis_stopped_mid_way_the_database_still_decides(database_url, private_redis):
    url, server = private_redis
    gateway = Gateway()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(
        make_settings(database_url, redis_url=url), TestAdapters(clock), GatewayOverride(gateway)
    )
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        processor = await api.run(
            AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
        )
        account = await alpha.account("ACC-1", collector="collector", balance=10_000)
        first = await pay(api, alpha, "before", body(account, processor))
        assert first.status_code == 201

        server.kill()
        server.wait()

        replay = await pay(api, alpha, "before", body(account, processor))
        assert (replay.status_code, replay.json()["id"]) == (201, first.json()["id"])
        assert (await pay(api, alpha, "during", body(account, processor))).status_code == 201
        assert (await pay(api, alpha, "during", body(account, processor))).status_code == 201
        assert sum(gateway.charged.values()) == 2
        assert await balance(api, alpha, account) == 5_000
        ready = await client.get("/ready")
        assert ready.status_code == 503
        states = {d["name"]: d["state"] for d in ready.json()["dependencies"]}
        assert states == {
            "database": "up",
            "redis": "down",
            "object_storage": "up",
            "payment_gateway": "up",
        }


class BreakerOverride(Provider):
    """The product's circuit breaker, tuned to trip fast, around a gateway the test drives."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self._breaker = CircuitBreakerGateway(gateway, threshold=3, reset_seconds=1)

    @provide(scope=Scope.APP, override=True)
    def breaker(self) -> CircuitBreakerGateway:
        return self._breaker


async def test_a_failing_gateway_trips_the_breaker_then_recovers(database_url):
    gateway = Gateway()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(make_settings(database_url), TestAdapters(clock), BreakerOverride(gateway))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        processor = await api.run(
            AddPaymentProcessor, alpha.admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
        )
        account = await alpha.account("ACC-1", collector="collector", balance=10_000)
        gateway.failing = True  # every call times out, as a sick gateway would
        no_answer = [(await pay(api, alpha, f"f{n}", body(account, processor))) for n in range(3)]
        assert [r.status_code for r in no_answer] == [202, 202, 202]  # outcome unknown: pending

        calls_before = gateway.calls
        fast = await pay(api, alpha, "fast", body(account, processor))
        assert fast.status_code == 503
        assert int(fast.headers["retry-after"]) >= 1
        assert gateway.calls == calls_before  # the open circuit never called the gateway
        ready = (await client.get("/ready")).json()
        assert ready["ready"] is True
        breaker = next(d for d in ready["dependencies"] if d["name"] == "payment_gateway")
        assert breaker["state"] == "down"

        gateway.failing = False
        await asyncio.sleep(1.1)
        healed = await pay(api, alpha, "healed", body(account, processor))
        assert healed.status_code == 201, healed.text
        ready = (await client.get("/ready")).json()
        breaker = next(d for d in ready["dependencies"] if d["name"] == "payment_gateway")
        assert breaker["state"] == "up"


async def test_refunds_over_http(shop):
    api, alpha, _, processor, account = shop
    made = (await pay(api, alpha, "p", body(account, processor, amount=10_000))).json()
    headers = {**alpha.headers["admin"], "Idempotency-Key": "refund-1"}
    url = f"/v1/payments/{made['id']}/refunds"
    refunded = await api.client.post(url, headers=headers, json={"amount": 1_500})
    assert refunded.status_code == 201
    assert refunded.json()["refund"]["amount"] == 1_500
    assert refunded.json()["payment"]["refunded_amount"] == 1_500
    again = await api.client.post(url, headers=headers, json={"amount": 1_500})
    assert again.json() == refunded.json()
    assert again.headers["idempotent-replayed"] == "true"
    account_now = (await api.client.get(f"/v1/accounts/{account.id}", headers=headers)).json()
    assert (account_now["current_balance"], account_now["status"]) == (1_500, "active")
    too_much = await api.client.post(
        url, headers={**headers, "Idempotency-Key": "refund-2"}, json={"amount": 9_000}
    )
    assert too_much.status_code == 409
    collector = {**alpha.headers["collector"], "Idempotency-Key": "refund-3"}
    assert (await api.client.post(url, headers=collector, json={})).status_code == 403


async def test_a_refund_the_gateway_did_not_answer_is_a_202_until_recovery_completes_it(shop):
    api, alpha, gateway, processor, account = shop
    made = (await pay(api, alpha, "p", body(account, processor, amount=10_000))).json()
    headers = {**alpha.headers["admin"], "Idempotency-Key": "lost-answer"}
    url = f"/v1/payments/{made['id']}/refunds"
    gateway.failing = True
    pending = await api.client.post(url, headers=headers, json={"amount": 1_500})
    assert pending.status_code == 202, pending.text
    assert pending.json()["refund"]["status"] == "pending"
    assert pending.json()["refund"]["gateway_reference"] is None
    assert pending.json()["payment"]["refunded_amount"] == 1_500  # reserved
    again = await api.client.post(url, headers=headers, json={"amount": 1_500})
    assert (again.status_code, again.json()) == (202, pending.json())

    gateway.failing = False
    api.clock.advance(timedelta(minutes=10))
    assert await api.run(SettlePendingRefunds) == 1
    done = await api.client.post(url, headers=headers, json={"amount": 1_500})
    assert done.status_code == 201, done.text
    assert done.json()["refund"]["status"] == "completed"
    assert done.headers["idempotent-replayed"] == "true"
    account_now = (await api.client.get(f"/v1/accounts/{account.id}", headers=headers)).json()
    assert account_now["current_balance"] == 1_500


async def test_a_refund_the_gateway_refuses_is_a_409_and_frees_its_key(shop):
    api, alpha, gateway, processor, account = shop
    made = (await pay(api, alpha, "p", body(account, processor))).json()
    headers = {**alpha.headers["admin"], "Idempotency-Key": "refused"}
    url = f"/v1/payments/{made['id']}/refunds"
    gateway.refusing_refunds = True
    refused = await api.client.post(url, headers=headers, json={})
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "charge_already_refunded" in refused.json()["detail"]
    payment = (await api.client.get(f"/v1/payments/{made['id']}", headers=headers)).json()
    assert payment["refunded_amount"] == 0
    gateway.refusing_refunds = False
    assert (await api.client.post(url, headers=headers, json={})).status_code == 201
