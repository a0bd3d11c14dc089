from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from debtflow_core.ports.accounts import AccountRepository
from debtflow_core.ports.activities import ActivityRepository
from debtflow_core.ports.agencies import AgencyRepository
from debtflow_core.ports.audit_log import AuditLogRepository
from debtflow_core.ports.debtors import DebtorRepository
from debtflow_core.ports.exports import ExportRepository
from debtflow_core.ports.file_source_repository import FileSourceRepository
from debtflow_core.ports.gateway_events import GatewayEventRepository
from debtflow_core.ports.idempotency import IdempotencyRepository
from debtflow_core.ports.import_runs import ImportRunRepository
from debtflow_core.ports.payment_processors import PaymentProcessorRepository
from debtflow_core.ports.payments import PaymentRepository
from debtflow_core.ports.sessions import SessionRepository
from debtflow_core.ports.users import UserRepository


class UnitOfWork(Protocol):
    """One transaction over all repositories.

    Use it as ``async with uow:``; the repositories are usable inside the block only.
    Nothing is kept unless ``commit`` is called: leaving the block without it (normally or
    by an exception) rolls everything back. A unit of work can be entered again after it
    has been left, for a new transaction, but not while it is open.

    A block holds what the storage needs for it (a pooled database connection) only while
    it is open, unless asked to keep it for the next block: between blocks the caller may
    wait for anything (a client sending its request, a password hash, a payment gateway)
    without keeping it from others.
    """

    agencies: AgencyRepository
    users: UserRepository
    debtors: DebtorRepository
    accounts: AccountRepository
    activities: ActivityRepository
    audit_log: AuditLogRepository
    payment_processors: PaymentProcessorRepository
    sessions: SessionRepository
    payments: PaymentRepository
    idempotency: IdempotencyRepository
    gateway_events: GatewayEventRepository
    file_sources: FileSourceRepository
    import_runs: ImportRunRepository
    exports: ExportRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    def keep_for_next_block(self) -> None:
        """Keep what the next block to end holds for the block after it, which the caller
        knows follows at once: one connection taken for two blocks instead of two.

        Kept for one more block only, and while it is kept no other work can use it: ask
        only when nothing slow comes between the two blocks.
        """
        ...

    async def release(self) -> None:
        """Give back what was kept for a block that has not come (nothing if none was).
        Outside a block only."""
        ...
