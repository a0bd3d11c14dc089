from __future__ import annotations

from collections.abc import Mapping

from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.errors import GatewayUnavailable
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
    RefundResult,
)
from debtflow_core.ports.processor_kinds import ProcessorKinds

MISSING = {
    ProcessorKind.STRIPE: "Stripe is not configured on this installation: set "
    "DEBTFLOW_STRIPE_API_KEY (and restart) before adding a Stripe processor",
    ProcessorKind.SANDBOX: "the sandbox gateway is not available on this installation",
}


class ProcessorGateways(PaymentGateway, ProcessorKinds):
    """One gateway per processor kind: each request goes to the gateway of its
    ``processor``. A kind with no gateway configured gets GatewayUnavailable with
    ``request_sent=False`` (nothing was charged), and is reported by :meth:`missing`."""

    def __init__(self, gateways: Mapping[ProcessorKind, PaymentGateway]) -> None:
        self._gateways = dict(gateways)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        return await self._gateway(request.processor).charge(request)

    async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
        return await self._gateway(lookup.processor).look_up(lookup)

    async def refund(self, request: RefundRequest) -> RefundResult:
        return await self._gateway(request.processor).refund(request)

    def missing(self, kind: ProcessorKind) -> str | None:
        return None if kind in self._gateways else MISSING[kind]

    def _gateway(self, kind: ProcessorKind) -> PaymentGateway:
        gateway = self._gateways.get(kind)
        if gateway is None:
            raise GatewayUnavailable(MISSING[kind], request_sent=False)
        return gateway
