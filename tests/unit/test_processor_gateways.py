"""Each payment goes to the gateway of its processor's kind; a kind with none is refused."""

from __future__ import annotations

import pytest

from debtflow_adapters.gateways.processors import ProcessorGateways
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.errors import GatewayUnavailable
from debtflow_core.ports.payment_gateway import ChargeRequest, ChargeResult, RefundRequest


class Recording(SandboxGateway):
    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.keys.append(request.idempotency_key)
        return await super().charge(request)


def charge(kind: ProcessorKind, key: str) -> ChargeRequest:
    return ChargeRequest(
        processor=kind,
        idempotency_key=key,
        amount=100,
        currency="USD",
        payment_method="pm_card_visa",
        description="t",
    )


async def test_requests_go_to_the_gateway_of_their_kind() -> None:
    sandbox, stripe = Recording(), Recording()
    gateways = ProcessorGateways({ProcessorKind.SANDBOX: sandbox, ProcessorKind.STRIPE: stripe})
    await gateways.charge(charge(ProcessorKind.SANDBOX, "a"))
    await gateways.charge(charge(ProcessorKind.STRIPE, "b"))
    assert (sandbox.keys, stripe.keys) == (["a"], ["b"])
    assert gateways.missing(ProcessorKind.STRIPE) is None


async def test_a_kind_without_a_gateway_is_unavailable_and_nothing_is_sent() -> None:
    gateways = ProcessorGateways({ProcessorKind.SANDBOX: SandboxGateway()})
    missing = gateways.missing(ProcessorKind.STRIPE)
    assert missing is not None and "DEBTFLOW_STRIPE_API_KEY" in missing
    with pytest.raises(GatewayUnavailable) as charging:
        await gateways.charge(charge(ProcessorKind.STRIPE, "a"))
    assert not charging.value.request_sent
    with pytest.raises(GatewayUnavailable):
        await gateways.refund(
            RefundRequest(
                processor=ProcessorKind.STRIPE,
                idempotency_key="r",
                charge_reference="pi_1",
                amount=1,
            )
        )
