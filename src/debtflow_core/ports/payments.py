from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.payment import Payment, PaymentStatus, Refund


class PaymentPosition(msgspec.Struct, frozen=True):
    created_at: datetime
    id: UUID


class PaymentQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Payments of one agency, newest first. ``collector_id`` keeps the payments of accounts
    assigned to that collector."""

    agency_id: UUID
    account_id: UUID | None = None
    status: PaymentStatus | None = None
    collector_id: UUID | None = None
    after: PaymentPosition | None = None
    limit: int = 50


class PaymentRepository(Protocol):
    """Payments and their refunds."""

    async def add(self, payment: Payment) -> None: ...

    async def get(self, id_: UUID) -> Payment | None: ...

    async def lock(self, id_: UUID) -> Payment | None:
        """The payment, held until the transaction ends (``SELECT … FOR UPDATE``): two
        transactions that settle one payment take turns, and the second sees what the
        first left, so a payment is completed or failed once."""
        ...

    async def update(self, payment: Payment) -> None:
        """Save status, gateway reference, failure and refunded amount."""
        ...

    async def list(self, query: PaymentQuery) -> list[Payment]: ...

    async def pending_since(self, before: datetime, limit: int) -> list[Payment]:
        """Payments still pending that were created before ``before``, oldest first,
        across agencies: the recovery task's work list."""
        ...

    async def reserve_refund(self, id_: UUID, amount: int) -> bool:
        """Add ``amount`` (negative to give back) to a completed payment's refunded amount
        in one atomic step, unless that would take it past the payment's amount or below
        zero; ``False`` then, and nothing changes. Concurrent refunds never over-refund."""
        ...

    async def add_refund(self, refund: Refund) -> None: ...

    async def refunds(self, payment_id: UUID) -> list[Refund]:
        """The payment's refunds, oldest first."""
        ...
