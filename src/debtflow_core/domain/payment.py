from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import msgspec

from debtflow_core.errors import Conflict


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    """A debtor's card payment on an account, in minor units of the account's currency.

    While ``pending`` its amount is held off the account's balance, so concurrent payments
    can never together take more than the balance; a failure gives the hold back.
    ``refunded_amount`` is what its refunds, pending or completed, take of it, up to
    ``amount``: a pending refund's amount is reserved there at once.
    """

    id: UUID
    agency_id: UUID
    account_id: UUID
    processor_id: UUID
    amount: int
    currency: str
    payment_method: str
    status: PaymentStatus
    idempotency_key: str
    gateway_reference: str | None
    failure_code: str | None
    failure_message: str | None
    refunded_amount: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime

    def complete(self, reference: str, *, at: datetime) -> Payment:
        self._require_pending()
        return msgspec.structs.replace(
            self, status=PaymentStatus.COMPLETED, gateway_reference=reference, updated_at=at
        )

    def fail(self, code: str, message: str, *, reference: str | None, at: datetime) -> Payment:
        self._require_pending()
        return msgspec.structs.replace(
            self,
            status=PaymentStatus.FAILED,
            gateway_reference=reference or self.gateway_reference,
            failure_code=code,
            failure_message=message,
            updated_at=at,
        )

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded_amount

    def _require_pending(self) -> None:
        if self.status is not PaymentStatus.PENDING:
            raise Conflict(f"the payment is {self.status}, no longer pending")


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    """The gateway reported later that the money never reached the debtor (a closed card,
    say): nothing was given back, and the amount is refundable again."""


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    """Money given back on a completed payment; once completed it restores the account's
    balance.

    A refund is ``pending`` while the gateway has not answered it: its amount is reserved
    on the payment (so nothing can refund it twice) but the balance is not restored yet.
    It is completed (at ``completed_at``) when the gateway's answer comes: to the request
    itself, to the recovery task asking again under the same ``idempotency_key``, or by
    the gateway's webhook. Only the request removes one, when its call certainly reached
    no gateway or was refused. The gateway's webhook may later report it ``failed``.
    Refunds learned from the webhook alone (made at the gateway, not through us) have no
    key.
    """

    id: UUID
    agency_id: UUID
    payment_id: UUID
    amount: int
    status: RefundStatus
    gateway_reference: str | None
    idempotency_key: str | None
    created_by: UUID | None
    created_at: datetime
    completed_at: datetime | None
    failed_at: datetime | None = None
    """When the gateway says it failed, by the gateway's clock (its event's time), which
    tells its later refund totals from those made before the failure."""
