"""The circuit breaker in front of a gateway: opens, fails fast, half-opens, closes."""

from __future__ import annotations

import asyncio

import pytest

from debtflow_adapters.gateways.circuit_breaker import CircuitBreakerGateway
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.errors import GatewayRefused, GatewayUnavailable
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeOutcome,
    ChargeRequest,
    PaymentGateway,
    RefundRequest,
)

# The adapters ignore it: choosing the gateway by kind is ProcessorGateways's job.
KIND = ProcessorKind.SANDBOX


class Flaky(SandboxGateway):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.refusing: GatewayUnavailable | None = None

    async def charge(self, request):
        self.calls += 1
        return await super().charge(request)

    async def refund(self, request):
        self.calls += 1
        if self.refusing is not None:
            raise self.refusing
        return await super().refund(request)


def request(method: str = "pm_card_visa") -> ChargeRequest:
    return ChargeRequest(
        processor=KIND,
        idempotency_key="k",
        amount=100,
        currency="USD",
        payment_method=method,
        description="t",
    )


def refund() -> RefundRequest:
    return RefundRequest(processor=KIND, idempotency_key="r", charge_reference="pi_1", amount=100)


async def test_the_breaker_opens_after_the_threshold_and_recovers_after_the_reset():
    inner = Flaky()
    telemetry = InMemoryTelemetry()
    gateway = CircuitBreakerGateway(
        inner, threshold=3, reset_seconds=1, name="sandbox", telemetry=telemetry
    )
    inner.failing = True
    for _ in range(3):
        with pytest.raises(GatewayUnavailable) as caught:
            await gateway.charge(request())
        assert caught.value.request_sent
    assert await gateway.state() == "opened"

    with pytest.raises(GatewayUnavailable) as fast:
        await gateway.charge(request())
    assert not fast.value.request_sent
    assert fast.value.retry_after_seconds == 1
    assert inner.calls == 3  # the open circuit never called the gateway

    inner.failing = False
    await asyncio.sleep(1.1)
    assert (await gateway.charge(request())).outcome is ChargeOutcome.SUCCEEDED
    assert await gateway.state() == "closed"
    assert telemetry.breaker_states == {"sandbox": "closed"}
    assert telemetry.breaker_transitions == {
        ("sandbox", "opened"): 1,
        ("sandbox", "half-opened"): 1,
        ("sandbox", "closed"): 1,
    }


async def test_declines_are_answers_not_failures():
    gateway = CircuitBreakerGateway(Flaky(), threshold=1, reset_seconds=60)
    for _ in range(3):
        result = await gateway.charge(request("pm_card_chargeDeclined"))
        assert result.outcome is ChargeOutcome.DECLINED
    assert await gateway.state() == "closed"


async def test_a_failure_while_half_open_opens_it_again():
    inner = Flaky()
    gateway = CircuitBreakerGateway(inner, threshold=1, reset_seconds=1)
    inner.failing = True
    with pytest.raises(GatewayUnavailable):
        await gateway.charge(request())
    await asyncio.sleep(1.1)
    with pytest.raises(GatewayUnavailable) as caught:
        await gateway.charge(request())
    assert caught.value.request_sent  # let through, and failed
    assert await gateway.state() == "opened"


async def test_requests_the_gateway_refuses_as_invalid_leave_it_closed():
    # A refund of a payment refunded in the gateway's dashboard, retried by an admin.
    inner = Flaky()
    gateway = CircuitBreakerGateway(inner, threshold=3, reset_seconds=60)
    inner.refusing = GatewayRefused("the payment gateway refused the refund (already refunded)")
    for _ in range(5):
        with pytest.raises(GatewayRefused) as caught:
            await gateway.refund(refund())
        assert not caught.value.request_sent  # the use cases still see nothing happened
    assert await gateway.state() == "closed"
    assert (await gateway.charge(request())).outcome is ChargeOutcome.SUCCEEDED
    assert inner.calls == 6


async def test_a_refusal_of_every_call_still_opens_it():
    # A rejected API key: the gateway refuses, but every call would fail alike.
    inner = Flaky()
    gateway = CircuitBreakerGateway(inner, threshold=3, reset_seconds=60)
    inner.refusing = GatewayUnavailable(
        "the payment gateway refused the refund (AuthenticationError)", request_sent=False
    )
    for _ in range(3):
        with pytest.raises(GatewayUnavailable):
            await gateway.refund(refund())
    assert await gateway.state() == "opened"


async def test_timeouts_after_a_refusal_still_open_it():
    inner = Flaky()
    gateway = CircuitBreakerGateway(inner, threshold=3, reset_seconds=60)
    inner.refusing = GatewayRefused("the payment gateway refused the refund (already refunded)")
    with pytest.raises(GatewayRefused):
        await gateway.refund(refund())
    inner.refusing = None
    inner.failing = True
    for _ in range(3):
        with pytest.raises(GatewayUnavailable) as caught:
            await gateway.charge(request())
        assert caught.value.request_sent
    assert await gateway.state() == "opened"


async def test_a_refusal_while_half_open_closes_it():
    # The gateway answered: it is up again.
    inner = Flaky()
    gateway = CircuitBreakerGateway(inner, threshold=1, reset_seconds=1)
    inner.failing = True
    with pytest.raises(GatewayUnavailable):
        await gateway.charge(request())
    inner.failing = False
    inner.refusing = GatewayRefused("the payment gateway refused the refund (already refunded)")
    await asyncio.sleep(1.1)
    with pytest.raises(GatewayRefused):
        await gateway.refund(refund())
    assert await gateway.state() == "closed"


async def test_lookups_count_and_are_held_by_the_open_breaker_like_charges():
    inner = Flaky()
    gateway = CircuitBreakerGateway(inner, threshold=2, reset_seconds=60)
    paid = await gateway.charge(request())
    lookup = ChargeLookup(processor=KIND, reference=paid.reference)
    inner.failing = True
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            await gateway.look_up(lookup)
    assert await gateway.state() == "opened"
    inner.failing = False
    with pytest.raises(GatewayUnavailable) as fast:
        await gateway.look_up(lookup)
    assert not fast.value.request_sent


async def test_a_gateway_that_cannot_look_charges_up_does_not_open_the_breaker():
    class Older(Flaky):
        look_up = PaymentGateway.look_up  # written before lookups existed

    inner = Older()
    gateway = CircuitBreakerGateway(inner, threshold=2, reset_seconds=60)
    for _ in range(3):
        with pytest.raises(NotImplementedError):
            await gateway.look_up(ChargeLookup(processor=KIND, reference="pi_1"))
    assert await gateway.state() == "closed"
    assert (await gateway.charge(request())).outcome is ChargeOutcome.SUCCEEDED
