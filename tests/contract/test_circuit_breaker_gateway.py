"""The circuit breaker in front of a gateway: opens, fails fast, half-opens, closes."""

from __future__ import annotations

import asyncio

import pytest

from debtflow_adapters.gateways.circuit_breaker import CircuitBreakerGateway
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.errors import GatewayUnavailable
from debtflow_core.ports.payment_gateway import ChargeOutcome, ChargeRequest

# The adapters ignore it: choosing the gateway by kind is ProcessorGateways's job.
KIND = ProcessorKind.SANDBOX


class Flaky(SandboxGateway):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def charge(self, request):
        self.calls += 1
        return await super().charge(request)


def request(method: str = "pm_card_visa") -> ChargeRequest:
    return ChargeRequest(
        processor=KIND,
        idempotency_key="k",
        amount=100,
        currency="USD",
        payment_method=method,
        description="t",
    )


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
