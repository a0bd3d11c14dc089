from __future__ import annotations

import enum
from datetime import timedelta
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.payment_processor import ProcessorKind


class ChargeOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    PROCESSING = "processing"
    """Accepted but not final: the gateway confirms later (a webhook, or a later lookup)."""


class ChargeRequest(msgspec.Struct, frozen=True, kw_only=True):
    processor: ProcessorKind
    """The kind of the payment's processor: which gateway charges."""
    idempotency_key: str
    amount: int
    currency: str
    payment_method: str
    description: str
    payment_id: UUID | None = None
    """Ours; the gateway repeats it in its webhooks, so an event finds its payment even
    when the charge's answer never reached us."""


class ChargeResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: ChargeOutcome
    reference: str
    """The gateway's id of the charge (a Stripe PaymentIntent id)."""
    decline_code: str | None = None
    message: str | None = None


class ChargeLookup(msgspec.Struct, frozen=True, kw_only=True):
    processor: ProcessorKind
    reference: str
    """The gateway's id of a charge it accepted: a :class:`ChargeResult`'s reference."""


class RefundRequest(msgspec.Struct, frozen=True, kw_only=True):
    processor: ProcessorKind
    idempotency_key: str
    charge_reference: str
    amount: int


class RefundResult(msgspec.Struct, frozen=True, kw_only=True):
    reference: str


KEYS_REMEMBERED = timedelta(hours=24)
"""How long a gateway is sure to remember an idempotency key (Stripe keeps them at least 24
hours): past it, calling again under a key may act again instead of answering."""


class PaymentGateway(Protocol):
    """Charges and refunds cards through a payment processor.

    Every call carries an idempotency key, and the gateway answers a repeated key with the
    first call's result without acting twice: calling ``charge`` again is how a caller
    that lost an answer (a crash, a timeout) learns what happened.

    Raises :class:`~debtflow_core.errors.GatewayUnavailable` when it cannot get an answer
    (unreachable, timing out, failing, or its circuit breaker open); whether the charge
    happened is then unknown until a later call with the same key. Raises its subclass
    :class:`~debtflow_core.errors.GatewayRefused` when the gateway answered that the request
    is invalid: nothing happened.
    """

    async def charge(self, request: ChargeRequest) -> ChargeResult: ...

    async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
        """Where a charge the gateway accepted stands now, by its reference: how a charge
        left PROCESSING learns its end when no webhook told us. Calling ``charge`` again
        cannot: the gateway answers a repeated key with its first answer, PROCESSING.

        A gateway written before this method existed raises NotImplementedError here: its
        charges left processing wait for its webhooks."""
        raise NotImplementedError

    async def refund(self, request: RefundRequest) -> RefundResult: ...
