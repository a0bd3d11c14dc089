"""A payment's phases as one repository call after another, inside one transaction.

The in-memory store and SQLite do :meth:`PaymentRepository.open` and
:meth:`PaymentRepository.settle` this way; on PostgreSQL each is one statement
(:mod:`~debtflow_adapters.persistence.psycopg_payments`). The contract suite holds both to
the same behaviour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from debtflow_core.domain.payment import Payment
from debtflow_core.ports.accounts import AccountRepository
from debtflow_core.ports.agencies import AgencyRepository
from debtflow_core.ports.audit_log import AuditLogRepository
from debtflow_core.ports.idempotency import IdempotencyRecord, IdempotencyRepository
from debtflow_core.ports.payment_processors import PaymentProcessorRepository
from debtflow_core.ports.payments import (
    Opened,
    Opening,
    Payable,
    PaymentRepository,
    Settling,
)

Swap = Callable[[Payment, Payment], Awaitable[bool]]
"""Save the second payment if the stored one is still pending with the first one's gateway
reference, in one atomic step; whether it did."""


class PaymentSteps:
    """Reads and writes of a payment's phases through the other repositories of one unit
    of work; ``commit`` commits it when a phase wrote, and its rollback undoes whatever a
    refused step had begun."""

    def __init__(
        self,
        *,
        payments: PaymentRepository,
        swap: Swap,
        commit: Callable[[], Awaitable[None]],
        accounts: AccountRepository,
        agencies: AgencyRepository,
        processors: PaymentProcessorRepository,
        idempotency: IdempotencyRepository,
        audit_log: AuditLogRepository,
    ) -> None:
        self._payments = payments
        self._swap = swap
        self._commit = commit
        self._accounts = accounts
        self._agencies = agencies
        self._processors = processors
        self._idempotency = idempotency
        self._audit_log = audit_log

    async def payable(self, account_id: UUID, processor_id: UUID) -> Payable | None:
        account = await self._accounts.get(account_id)
        if account is None:
            return None
        agency = await self._agencies.get(account.agency_id)
        return Payable(
            account=account,
            allow_overpayment=agency is not None and agency.allow_overpayment,
            processor=await self._processors.get(processor_id),
        )

    async def open(self, opening: Opening) -> Opened:
        existing = await self._idempotency.claim(opening.claim)
        if existing is not None:
            return Opened(existing=existing)
        payment = opening.payment
        balance = await self._accounts.adjust_balance(
            payment.account_id, -payment.amount, floor=opening.floor
        )
        if balance is None:
            await self._idempotency.release(opening.claim.agency_id, opening.claim.key)
            return Opened()
        await self._payments.add(payment)
        await self._audit_log.add(opening.audit)
        await self._commit()
        return Opened(balance=balance)

    async def settle(self, settling: Settling) -> IdempotencyRecord | None:
        after = settling.after
        if not await self._swap(settling.before, after):
            return None
        record = await self._idempotency.finish(
            after.agency_id, after.idempotency_key, settling.outcome, settling.response
        )
        if record is None:
            return None  # not committed: leaving the unit of work undoes the swap
        await self._audit_log.add(settling.audit)
        await self._commit()
        return record
