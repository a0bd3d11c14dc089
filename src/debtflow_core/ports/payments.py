from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.account import Account
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund
from debtflow_core.domain.payment_processor import PaymentProcessor
from debtflow_core.ports.idempotency import IdempotencyRecord


class PaymentPosition(msgspec.Struct, frozen=True):
    created_at: datetime
    id: UUID


class RefundPosition(msgspec.Struct, frozen=True):
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


class Payable(msgspec.Struct, frozen=True, kw_only=True):
    """What taking a payment on an account needs to know, read at once."""

    account: Account
    allow_overpayment: bool
    """The account's agency lets a payment exceed the balance."""
    processor: PaymentProcessor | None
    """The processor asked for, if it exists (of whichever agency: the caller checks)."""


class Opening(msgspec.Struct, frozen=True, kw_only=True):
    """The writes that open a payment (phase 1), all or nothing."""

    claim: IdempotencyRecord
    payment: Payment
    """Pending; its amount is taken off its account's balance."""
    audit: AuditEntry
    floor: int | None
    """The balance may not end below it (``None``: no floor)."""


class Opened(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`PaymentRepository.open` did: the payment is written when ``balance`` is
    set; otherwise nothing changed, because ``existing`` holds the key, or ``key_taken``,
    or, with neither, the hold would have crossed the floor."""

    existing: IdempotencyRecord | None = None
    balance: int | None = None
    """The account's balance after the hold."""
    key_taken: bool = False
    """The claim was lost to another request, which let the key go (it did nothing: its
    payment was cancelled) before the key's record could be read. The caller answers as
    for a request still running. Only an adapter that claims and reads the record in two
    steps can see it."""


class Settling(msgspec.Struct, frozen=True, kw_only=True):
    """The writes that settle a pending payment (phase 3), all or nothing. The balance is
    not touched: a completed payment keeps the hold phase 1 took."""

    before: Payment
    """The payment as the caller last saw it: pending."""
    after: Payment
    """Completed (a failed payment gives its hold back, which the caller does itself)."""
    audit: AuditEntry
    outcome: str
    response: dict[str, Any]
    """Stored under the payment's idempotency key with ``outcome``, for replays."""


class PaymentRepository(Protocol):
    """Payments and their refunds.

    :meth:`open` and :meth:`settle` write beyond payments (the idempotency key, the balance,
    the audit log) and commit the unit of work, so that a database can do a phase of a
    payment, its commit included, in one go. Call them with nothing else uncommitted in
    the unit of work: it is committed with them.
    """

    async def payable(self, account_id: UUID, processor_id: UUID) -> Payable | None:
        """The account with its agency's overpayment flag and the processor, or ``None``
        if there is no such account."""
        ...

    async def open(self, opening: Opening) -> Opened:
        """Claim the key; if this claim won, take the payment's amount off the balance
        unless that would cross the floor; if it did, add the payment and its audit entry
        and commit the unit of work. A lost claim or a refused hold changes nothing (the
        key is not kept) and commits nothing. Concurrent openings behave as claims and
        balance adjustments do, one at a time."""
        ...

    async def settle(self, settling: Settling) -> IdempotencyRecord | None:
        """If the payment is still as ``before`` (pending, with the same gateway
        reference), save ``after``, add the audit entry, finish the idempotency key and
        commit the unit of work; return the finished record. Otherwise return ``None``
        (another settlement came first, or the key is gone) having changed and committed
        nothing. Of concurrent settlements of one payment at most one saves."""
        ...

    async def add(self, payment: Payment) -> None: ...

    async def get(self, id_: UUID) -> Payment | None: ...

    async def get_by_reference(self, reference: str) -> Payment | None:
        """The payment the gateway knows as ``reference`` (its PaymentIntent, say), or
        ``None``: how an event about a refund we did not make finds its payment."""
        ...

    async def lock(self, id_: UUID) -> Payment | None:
        """The payment, held until the transaction ends (``SELECT … FOR UPDATE``): two
        transactions that settle one payment take turns, and the second sees what the
        first left, so a payment is completed or failed once."""
        ...

    async def update(self, payment: Payment) -> None:
        """Save status, gateway reference, failure and refunded amount."""
        ...

    async def list(self, query: PaymentQuery) -> list[Payment]: ...

    async def pending_since(
        self,
        before: datetime,
        limit: int,
        *,
        after: datetime,
        following: PaymentPosition | None = None,
    ) -> list[Payment]:
        """Payments still pending that were created before ``before``, oldest first, across
        agencies: the recovery task's work list. Of those created at ``after`` or earlier,
        only the ones the gateway accepted (with a reference, which can be looked up).
        ``following`` pages on: the payments after that one."""
        ...

    async def reserve_refund(self, id_: UUID, amount: int) -> bool:
        """Add ``amount`` (negative to give back) to a completed payment's refunded amount
        in one atomic step, unless that would take it past the payment's amount or below
        zero; ``False`` then, and nothing changes. Concurrent refunds never over-refund."""
        ...

    async def add_refund(self, refund: Refund) -> None: ...

    async def refund(self, id_: UUID) -> Refund | None: ...

    async def complete_refund(self, id_: UUID, reference: str, at: datetime) -> None:
        """Mark a pending refund completed at ``at``, with the gateway's reference."""
        ...

    async def fail_refund(self, id_: UUID, reference: str | None, at: datetime) -> None:
        """Mark a refund failed at ``at``: the gateway reported that nothing was given
        back. Its gateway reference becomes ``reference``, the gateway's own id for the
        refund."""
        ...

    async def remove_refund(self, id_: UUID) -> None:
        """Delete a pending refund that the gateway certainly never made."""
        ...

    async def refunds(self, payment_id: UUID) -> list[Refund]:
        """The payment's refunds, pending ones included, oldest first."""
        ...

    async def pending_refunds(
        self,
        before: datetime,
        limit: int,
        *,
        after: datetime,
        following: RefundPosition | None = None,
    ) -> list[Refund]:
        """Refunds still pending that were created between ``after`` and ``before``, oldest
        first, across agencies: the recovery task's work list. ``following`` pages on: the
        refunds after that one."""
        ...
