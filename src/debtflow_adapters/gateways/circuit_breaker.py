from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from debtflow_core.errors import GatewayRefused, GatewayUnavailable
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
    RefundResult,
)
from debtflow_core.ports.telemetry import Telemetry

R = TypeVar("R")
A = TypeVar("A")


class CircuitBreakerGateway(PaymentGateway):
    """A gateway behind a purgatory circuit breaker.

    After ``threshold`` calls in a row that give no answer (GatewayUnavailable, or any
    other error), the circuit opens: for ``reset_seconds`` every call fails at once with
    GatewayUnavailable(request_sent=False) without touching the gateway. Then one call is
    let through; its success closes the circuit, its failure opens it again. Declines are
    answers, not failures, and so are requests the gateway refuses as invalid
    (GatewayRefused): a refund retried against a payment refunded elsewhere must not pause
    every card payment. A rejected API key still counts: every call would fail alike.

    The state lives in this process: each server process protects itself, and a Redis
    outage cannot take payments down with it. Each change of state is told to
    ``telemetry``, under ``name`` (the metric's label only).
    """

    CIRCUIT = "payment-gateway"

    def __init__(
        self,
        gateway: PaymentGateway,
        *,
        threshold: int,
        reset_seconds: int,
        name: str = CIRCUIT,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._gateway = gateway
        self._reset_seconds = reset_seconds
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=reset_seconds,
            # Answers, not failures: a refusal, and a gateway that cannot look charges up.
            exclude=[GatewayRefused, NotImplementedError],
        )
        if telemetry is not None:
            self._breakers.add_listener(_StateListener(name, telemetry))

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        return await self._guarded(self._gateway.charge, request)

    async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
        return await self._guarded(self._gateway.look_up, lookup)

    async def refund(self, request: RefundRequest) -> RefundResult:
        return await self._guarded(self._gateway.refund, request)

    async def state(self) -> str:
        """``closed``, ``opened`` or ``half-opened``."""
        breaker = await self._breakers.get_breaker(self.CIRCUIT)
        return breaker.context.state

    async def _guarded(self, call: Callable[[A], Awaitable[R]], request: A) -> R:
        breaker = await self._breakers.get_breaker(self.CIRCUIT)
        try:
            async with breaker:
                return await call(request)
        except OpenedState as opened:
            wait = max(1, math.ceil(opened.opened_at + self._reset_seconds - time.time()))
            raise GatewayUnavailable(
                "the payment gateway is failing; payments are paused for a moment",
                retry_after_seconds=wait,
                request_sent=False,
            ) from None


class _StateListener:
    """purgatory's hook: tells the telemetry of each state the breaker enters."""

    def __init__(self, name: str, telemetry: Telemetry) -> None:
        self._name = name
        self._telemetry = telemetry

    def __call__(self, circuit: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            self._telemetry.breaker_changed(self._name, event.state)
