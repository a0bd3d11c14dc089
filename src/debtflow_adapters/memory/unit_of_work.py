from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from debtflow_adapters.memory import repositories as repos
from debtflow_adapters.memory.table import Table
from debtflow_core.domain.account import Account
from debtflow_core.domain.activity import Activity
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.debtor import Debtor
from debtflow_core.domain.export import Export, ExportKind
from debtflow_core.domain.gateway_event import GatewayEvent
from debtflow_core.domain.imports import FileSource, ImportRowError, ImportRun
from debtflow_core.domain.payment import Payment, Refund
from debtflow_core.domain.payment_processor import PaymentProcessor
from debtflow_core.domain.session import RefreshToken, Session
from debtflow_core.domain.user import User
from debtflow_core.ports.idempotency import IdempotencyRecord
from debtflow_core.ports.unit_of_work import UnitOfWork


@dataclass
class InMemoryStore:
    """The committed state that :class:`InMemoryUnitOfWork` instances share.

    Make one per test (or per embedded application) and give it to every unit of work.
    """

    agencies: dict[UUID, Agency] = field(default_factory=dict)
    users: dict[UUID, User] = field(default_factory=dict)
    debtors: dict[UUID, Debtor] = field(default_factory=dict)
    accounts: dict[UUID, Account] = field(default_factory=dict)
    activities: dict[UUID, Activity] = field(default_factory=dict)
    audit_log: dict[UUID, AuditEntry] = field(default_factory=dict)
    payment_processors: dict[UUID, PaymentProcessor] = field(default_factory=dict)
    sessions: dict[UUID, Session] = field(default_factory=dict)
    refresh_tokens: dict[UUID, RefreshToken] = field(default_factory=dict)
    # Spent refresh tokens, recorded outside any transaction: the stand-in for the row lock
    # that makes two concurrent refreshes with one token see each other.
    spent_tokens: set[UUID] = field(default_factory=set)
    payments: dict[UUID, Payment] = field(default_factory=dict)
    refunds: dict[UUID, Refund] = field(default_factory=dict)
    idempotency: dict[tuple[UUID, str], IdempotencyRecord] = field(default_factory=dict)
    gateway_events: dict[str, GatewayEvent] = field(default_factory=dict)
    file_sources: dict[UUID, FileSource] = field(default_factory=dict)
    import_runs: dict[UUID, ImportRun] = field(default_factory=dict)
    # A run's row errors by line, by run id.
    import_row_errors: dict[UUID, dict[int, ImportRowError]] = field(default_factory=dict)
    exports: dict[UUID, Export] = field(default_factory=dict)
    nightly_exports: dict[UUID, tuple[ExportKind, ...]] = field(default_factory=dict)


class InMemoryUnitOfWork(UnitOfWork):
    """A unit of work over an :class:`InMemoryStore`, with commit and rollback.

    Ordinary writes stay private until ``commit``. Writes that a database would guard
    with a row lock (balance adjustments, idempotency claims) land in the store at once,
    so that concurrent units of work see them, and are undone if this one rolls back.
    """

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._tables: list[Table[Any]] | None = None
        self._undo: list[Callable[[], None]] = []

    async def __aenter__(self) -> Self:
        if self._tables is not None:
            raise RuntimeError("this unit of work is already open")
        store = self._store
        agencies, users = Table(store.agencies), Table(store.users)
        debtors, accounts = Table(store.debtors), Table(store.accounts)
        activities, audit_log = Table(store.activities), Table(store.audit_log)
        processors = Table(store.payment_processors)
        sessions, tokens = Table(store.sessions), Table(store.refresh_tokens)
        payments, refunds = Table(store.payments), Table(store.refunds)
        file_sources = Table(store.file_sources)
        import_runs, import_row_errors = Table(store.import_runs), Table(store.import_row_errors)
        exports, nightly_exports = Table(store.exports), Table(store.nightly_exports)
        self._tables = [
            agencies,
            users,
            debtors,
            accounts,
            activities,
            audit_log,
            processors,
            sessions,
            tokens,
            payments,
            refunds,
            file_sources,
            import_runs,
            import_row_errors,
            exports,
            nightly_exports,
        ]
        undo = self._undo.append
        self.agencies = repos.InMemoryAgencyRepository(agencies)
        self.users = repos.InMemoryUserRepository(users)
        self.debtors = repos.InMemoryDebtorRepository(debtors, accounts)
        self.accounts = repos.InMemoryAccountRepository(accounts, debtors, store.accounts, undo)
        self.activities = repos.InMemoryActivityRepository(activities)
        self.audit_log = repos.InMemoryAuditLogRepository(audit_log)
        self.payment_processors = repos.InMemoryPaymentProcessorRepository(processors)
        self.sessions = repos.InMemorySessionRepository(sessions, tokens, store.spent_tokens, users)
        self.idempotency = repos.InMemoryIdempotencyRepository(store.idempotency, undo)
        self.payments = repos.InMemoryPaymentRepository(
            payments, refunds, accounts, store.payments, undo, self
        )
        self.gateway_events = repos.InMemoryGatewayEventRepository(store.gateway_events, undo)
        self.file_sources = repos.InMemoryFileSourceRepository(file_sources)
        self.import_runs = repos.InMemoryImportRunRepository(import_runs, import_row_errors)
        self.exports = repos.InMemoryExportRepository(exports, nightly_exports)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._tables = None

    async def commit(self) -> None:
        if self._tables is None:
            raise RuntimeError("commit outside of an open unit of work")
        for table in self._tables:
            table.apply()
        self._undo.clear()

    def keep_for_next_block(self) -> None:
        """Nothing to keep: a block holds no connection."""

    async def release(self) -> None:
        """Nothing kept to give back."""
