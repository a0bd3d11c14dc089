from __future__ import annotations

import asyncio
import hashlib

from debtflow_core.errors import GatewayRefused, GatewayUnavailable
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
    RefundResult,
)

# Payment methods with a fixed outcome, named after Stripe's test payment methods.
DECLINES = {
    "pm_card_chargeDeclined": ("generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
}
PROCESSING = "pm_card_processing"
"""Accepted but not final, like a payment awaiting its bank: confirmed later, by a webhook
or when it is looked up."""


def _reference(prefix: str, idempotency_key: str) -> str:
    """The same key always gets the same id, in every process: replays need no state."""
    return f"{prefix}_sandbox_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"


class SandboxGateway(PaymentGateway):
    """Charges nothing and answers by payment method: any ``pm_…`` succeeds, except the
    declines in :data:`DECLINES` and :data:`PROCESSING`, which succeeds when looked up.

    ``latency`` delays every answer; ``failing`` makes every call raise
    GatewayUnavailable, as a gateway that times out would, to rehearse outages.
    """

    def __init__(self, *, latency: float = 0.0, failing: bool = False) -> None:
        self.latency = latency
        self.failing = failing

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        await self._answer()
        reference = _reference("pi", request.idempotency_key)
        if request.payment_method in DECLINES:
            code, message = DECLINES[request.payment_method]
            return ChargeResult(
                outcome=ChargeOutcome.DECLINED,
                reference=reference,
                decline_code=code,
                message=message,
            )
        if request.payment_method == PROCESSING:
            return ChargeResult(outcome=ChargeOutcome.PROCESSING, reference=reference)
        return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, reference=reference)

    async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
        """Only a charge left processing is ever looked up, and the sandbox's bank has
        cleared it by then. The sandbox keeps no state, so any reference of its own is
        such a charge."""
        await self._answer()
        if not lookup.reference.startswith("pi_sandbox_"):
            raise GatewayRefused(f"the sandbox gateway made no charge {lookup.reference!r}")
        return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, reference=lookup.reference)

    async def refund(self, request: RefundRequest) -> RefundResult:
        await self._answer()
        return RefundResult(reference=_reference("re", request.idempotency_key))

    async def _answer(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.failing:
            raise GatewayUnavailable("the sandbox gateway is set to fail", retry_after_seconds=1)
