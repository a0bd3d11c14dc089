"""What the worker-task tests swap into a container: a bank that answers later, and the
provider that puts it (and a clock the test moves) in place."""

from __future__ import annotations

from collections import Counter

from dishka import Provider, Scope, provide

from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
)


class SlowBank(SandboxGateway):
    """Answers "processing" to every charge, as a bank that confirms later; looked up, a
    charge has succeeded. Counts the charges by key and the lookups by reference."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.looked_up: Counter[str] = Counter()

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.calls[request.idempotency_key] += 1
        return ChargeResult(
            outcome=ChargeOutcome.PROCESSING, reference=f"pi_{request.idempotency_key[-6:]}"
        )

    async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
        self.looked_up[lookup.reference] += 1
        return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, reference=lookup.reference)


class Overrides(Provider):
    """``clock`` and ``gateway`` in place of the container's own."""

    def __init__(self, clock: Clock, gateway: PaymentGateway) -> None:
        super().__init__()
        self._clock = clock
        self._gateway = gateway

    @provide(scope=Scope.APP, override=True)
    def clock(self) -> Clock:
        return self._clock

    @provide(scope=Scope.APP, override=True)
    def gateway(self) -> PaymentGateway:
        return self._gateway
