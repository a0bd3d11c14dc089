"""In-memory repositories: the same filtering, ordering and uniqueness as the SQL ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from debtflow_adapters import text_search
from debtflow_adapters.memory.table import Table
from debtflow_adapters.payment_steps import PaymentSteps
from debtflow_core.domain.account import Account
from debtflow_core.domain.activity import Activity
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.debtor import Debtor
from debtflow_core.domain.export import FINISHED_EXPORTS, Export, ExportKind, ExportStatus
from debtflow_core.domain.gateway_event import GatewayEvent
from debtflow_core.domain.imports import FileSource, ImportRowError, ImportRun, ImportStatus
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund, RefundStatus
from debtflow_core.domain.payment_processor import PaymentProcessor
from debtflow_core.domain.session import RefreshToken, Session
from debtflow_core.domain.user import EMAIL_TAKEN, User
from debtflow_core.errors import Conflict, NotFound
from debtflow_core.ports.accounts import AccountQuery, AccountRepository, AccountSort
from debtflow_core.ports.activities import ActivityQuery, ActivityRepository
from debtflow_core.ports.agencies import AgencyRepository
from debtflow_core.ports.audit_log import AuditLogRepository, AuditQuery
from debtflow_core.ports.debtors import DebtorQuery, DebtorRepository
from debtflow_core.ports.exports import ExportPosition, ExportRepository
from debtflow_core.ports.file_source_repository import FileSourceRepository
from debtflow_core.ports.gateway_events import GatewayEventRepository
from debtflow_core.ports.idempotency import (
    IdempotencyRecord,
    IdempotencyRepository,
    IdempotencyState,
)
from debtflow_core.ports.import_runs import ImportRunRepository, RunPosition
from debtflow_core.ports.payment_processors import PaymentProcessorRepository
from debtflow_core.ports.payments import (
    Opened,
    Opening,
    Payable,
    PaymentPosition,
    PaymentQuery,
    PaymentRepository,
    RefundPosition,
    Settling,
)
from debtflow_core.ports.sessions import PurgedSessions, SessionRepository
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.ports.users import UserQuery, UserRepository

T = TypeVar("T")


def _descending(
    rows: Iterable[T],
    key: Callable[[T], tuple[Any, UUID]],
    after: tuple[Any, UUID] | None,
    limit: int,
) -> list[T]:
    """Rows in descending ``key`` order, strictly after the ``after`` key, at most ``limit``."""
    candidates = [row for row in rows if after is None or key(row) < after]
    return sorted(candidates, key=key, reverse=True)[:limit]


def _contains(haystack: str, needle: str) -> bool:
    return text_search.lower(needle) in text_search.lower(haystack)


def _updated(stored: T, changed: T, fields: tuple[str, ...]) -> T:
    """``stored`` with ``fields`` copied from ``changed``: what an SQL UPDATE of them does."""
    return msgspec.structs.replace(stored, **{name: getattr(changed, name) for name in fields})


class InMemoryAgencyRepository(AgencyRepository):
    def __init__(self, table: Table[Agency]) -> None:
        self._table = table

    async def add(self, agency: Agency) -> None:
        if await self.get_by_slug(agency.slug) is not None:
            raise Conflict(f"the slug {agency.slug!r} is taken")
        self._table.put(agency.id, agency)

    async def get(self, id_: UUID) -> Agency | None:
        return self._table.get(id_)

    async def lock(self, id_: UUID) -> Agency | None:
        # Nothing can come between: units of work share one event loop, and none of this
        # store's calls gives it up between a read and the commit.
        return await self.get(id_)

    async def get_by_slug(self, slug: str) -> Agency | None:
        return next((a for a in self._table.rows() if a.slug == slug), None)

    async def ids(self) -> list[UUID]:
        return [agency.id for agency in self._table.rows()]


class InMemoryUserRepository(UserRepository):
    def __init__(self, table: Table[User]) -> None:
        self._table = table

    async def add(self, user: User) -> None:
        if await self.get_by_email(user.email) is not None:
            raise Conflict(EMAIL_TAKEN)
        self._table.put(user.id, user)

    async def get(self, id_: UUID) -> User | None:
        return self._table.get(id_)

    async def get_by_email(self, email: str) -> User | None:
        return next((u for u in self._table.rows() if u.email == email), None)

    async def list(self, query: UserQuery) -> list[User]:
        def matches(u: User) -> bool:
            return (
                u.agency_id == query.agency_id
                and (query.role is None or u.role == query.role)
                and (query.active is None or u.active == query.active)
                and (query.after is None or u.email > query.after.email)
            )

        return sorted(filter(matches, self._table.rows()), key=lambda u: u.email)[: query.limit]

    async def update(self, user: User) -> None:
        stored = self._table.get(user.id)
        if stored is not None:
            fields = ("role", "full_name", "active", "password_hash")
            self._table.put(user.id, _updated(stored, user, fields))


class InMemoryDebtorRepository(DebtorRepository):
    def __init__(self, table: Table[Debtor], accounts: Table[Account]) -> None:
        self._table = table
        self._accounts = accounts

    async def add(self, debtor: Debtor) -> None:
        if debtor.external_id is not None and await self.get_by_external_id(
            debtor.agency_id, debtor.external_id
        ):
            raise Conflict(f"a debtor with the external id {debtor.external_id!r} exists")
        self._table.put(debtor.id, debtor)

    async def get(self, id_: UUID) -> Debtor | None:
        return self._table.get(id_)

    async def lock(self, id_: UUID) -> Debtor | None:
        # Nothing can come between: units of work share one event loop, and none of this
        # store's calls gives it up between a read and the commit.
        return await self.get(id_)

    async def get_by_external_id(self, agency_id: UUID, external_id: str) -> Debtor | None:
        return next(
            (
                d
                for d in self._table.rows()
                if d.agency_id == agency_id and d.external_id == external_id
            ),
            None,
        )

    async def update(self, debtor: Debtor) -> None:
        stored = self._table.get(debtor.id)
        if stored is None:
            return
        if debtor.external_id is not None:
            holder = await self.get_by_external_id(stored.agency_id, debtor.external_id)
            if holder is not None and holder.id != debtor.id:
                raise Conflict(f"a debtor with the external id {debtor.external_id!r} exists")
        fixed = {"id", "agency_id", "created_at"}
        fields = tuple(name for name in Debtor.__struct_fields__ if name not in fixed)
        self._table.put(debtor.id, _updated(stored, debtor, fields))

    async def search(self, query: DebtorQuery) -> list[Debtor]:
        served: set[UUID] | None = None
        if query.collector_id is not None:
            served = {
                a.debtor_id
                for a in self._accounts.rows()
                if a.assigned_collector_id == query.collector_id
            }

        def matches(d: Debtor) -> bool:
            return (
                d.agency_id == query.agency_id
                and (served is None or d.id in served)
                and (
                    query.text is None
                    or _contains(d.full_name, query.text)
                    or _contains(d.external_id or "", query.text)
                )
            )

        after = (query.after.created_at, query.after.id) if query.after else None
        return _descending(
            filter(matches, self._table.rows()), lambda d: (d.created_at, d.id), after, query.limit
        )


class InMemoryAccountRepository(AccountRepository):
    def __init__(
        self,
        table: Table[Account],
        debtors: Table[Debtor],
        committed: dict[UUID, Account],
        on_rollback: Callable[[Callable[[], None]], None],
    ) -> None:
        self._table = table
        self._debtors = debtors
        self._committed = committed
        self._on_rollback = on_rollback

    async def adjust_balance(self, id_: UUID, delta: int, *, floor: int | None = 0) -> int | None:
        # Straight into the committed row, as an atomic UPDATE would; undone on rollback.
        account = self._committed.get(id_)
        if account is None:
            return None
        balance = account.current_balance + delta
        if floor is not None and balance < floor:
            return None
        self._set_balance(id_, delta)
        self._on_rollback(lambda: self._set_balance(id_, -delta))
        return balance

    def _set_balance(self, id_: UUID, delta: int) -> None:
        account = self._committed[id_]
        self._committed[id_] = msgspec.structs.replace(
            account, current_balance=account.current_balance + delta
        )

    async def add(self, account: Account) -> None:
        if await self.get_by_external_id(account.agency_id, account.external_id) is not None:
            raise Conflict(f"an account with the external id {account.external_id!r} exists")
        self._table.put(account.id, account)

    async def get(self, id_: UUID) -> Account | None:
        return self._table.get(id_)

    async def lock(self, id_: UUID) -> Account | None:
        # Nothing can come between: units of work share one event loop, and none of this
        # store's calls gives it up between a read and the commit.
        return await self.get(id_)

    async def get_by_external_id(self, agency_id: UUID, external_id: str) -> Account | None:
        return next(
            (
                a
                for a in self._table.rows()
                if a.agency_id == agency_id and a.external_id == external_id
            ),
            None,
        )

    async def update(self, account: Account) -> None:
        stored = self._table.get(account.id)
        if stored is not None:
            fields = (
                "status",
                "assigned_collector_id",
                "original_creditor",
                "charge_off_date",
                "placed_at",
                "updated_at",
            )
            self._table.put(account.id, _updated(stored, account, fields))

    async def list(self, query: AccountQuery) -> list[Account]:
        def matches(a: Account) -> bool:
            if a.agency_id != query.agency_id:
                return False
            if query.status is not None and a.status != query.status:
                return False
            if query.collector_id is not None and a.assigned_collector_id != query.collector_id:
                return False
            if query.unassigned and a.assigned_collector_id is not None:
                return False
            if query.debtor_id is not None and a.debtor_id != query.debtor_id:
                return False
            if query.min_balance is not None and a.current_balance < query.min_balance:
                return False
            if query.max_balance is not None and a.current_balance > query.max_balance:
                return False
            if query.text is not None:
                debtor = self._debtors.get(a.debtor_id)
                name = debtor.full_name if debtor else ""
                return _contains(name, query.text) or _contains(a.external_id, query.text)
            return True

        rows = filter(matches, self._table.rows())
        after = query.after
        if query.sort is AccountSort.NEWEST:
            key = (after.placed_at, after.id) if after else None
            return _descending(rows, lambda a: (a.placed_at, a.id), key, query.limit)
        if query.sort is AccountSort.BALANCE_DESC:
            key = (after.balance, after.id) if after else None
            return _descending(rows, lambda a: (a.current_balance, a.id), key, query.limit)
        ascending = sorted(
            (
                a
                for a in rows
                if after is None or (a.current_balance, a.id) > (after.balance, after.id)
            ),
            key=lambda a: (a.current_balance, a.id),
        )
        return ascending[: query.limit]

    async def release_collector(
        self, agency_id: UUID, collector_id: UUID, *, at: datetime
    ) -> list[Account]:
        released = [
            msgspec.structs.replace(a, assigned_collector_id=None, updated_at=at)
            for a in self._table.rows()
            if a.agency_id == agency_id and a.assigned_collector_id == collector_id
        ]
        for account in released:
            self._table.put(account.id, account)
        return released


class InMemoryActivityRepository(ActivityRepository):
    def __init__(self, table: Table[Activity]) -> None:
        self._table = table

    async def add(self, activity: Activity) -> None:
        self._table.put(activity.id, activity)

    async def list(self, query: ActivityQuery) -> list[Activity]:
        rows = (a for a in self._table.rows() if a.account_id == query.account_id)
        after = (query.after.occurred_at, query.after.id) if query.after else None
        return _descending(rows, lambda a: (a.occurred_at, a.id), after, query.limit)


class InMemoryAuditLogRepository(AuditLogRepository):
    def __init__(self, table: Table[AuditEntry]) -> None:
        self._table = table

    async def add(self, entry: AuditEntry) -> None:
        self._table.put(entry.id, entry)

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        def matches(e: AuditEntry) -> bool:
            return (
                e.agency_id == query.agency_id
                and (query.entity_type is None or e.entity_type == query.entity_type)
                and (query.entity_id is None or e.entity_id == query.entity_id)
                and (query.actor_id is None or e.actor_id == query.actor_id)
                and (query.since is None or e.occurred_at >= query.since)
                and (query.until is None or e.occurred_at < query.until)
            )

        after = (query.after.occurred_at, query.after.id) if query.after else None
        return _descending(
            filter(matches, self._table.rows()), lambda e: (e.occurred_at, e.id), after, query.limit
        )


class InMemoryPaymentProcessorRepository(PaymentProcessorRepository):
    def __init__(self, table: Table[PaymentProcessor]) -> None:
        self._table = table

    async def add(self, processor: PaymentProcessor) -> None:
        self._table.put(processor.id, processor)

    async def get(self, id_: UUID) -> PaymentProcessor | None:
        return self._table.get(id_)

    async def list(self, agency_id: UUID) -> list[PaymentProcessor]:
        return sorted(
            (p for p in self._table.rows() if p.agency_id == agency_id), key=lambda p: p.name
        )


class InMemoryFileSourceRepository(FileSourceRepository):
    def __init__(self, table: Table[FileSource]) -> None:
        self._table = table

    def _refuse_taken_name(self, source: FileSource) -> None:
        for other in self._table.rows():
            if (other.agency_id, other.name) == (source.agency_id, source.name) and (
                other.id != source.id
            ):
                raise Conflict(f"a file source named {source.name!r} exists")

    async def add(self, source: FileSource) -> None:
        if self._table.get(source.id) is not None:
            raise Conflict(f"a file source with the id {source.id} exists")
        self._refuse_taken_name(source)
        self._table.put(source.id, source)

    async def get(self, id_: UUID) -> FileSource | None:
        return self._table.get(id_)

    async def list(self, agency_id: UUID) -> list[FileSource]:
        return sorted(
            (s for s in self._table.rows() if s.agency_id == agency_id), key=lambda s: s.name
        )

    async def list_active(self) -> list[FileSource]:
        return sorted((s for s in self._table.rows() if s.active), key=lambda s: s.id)

    async def update(self, source: FileSource) -> None:
        stored = self._table.get(source.id)
        if stored is None:
            return
        self._refuse_taken_name(source)
        kept = {"id": stored.id, "agency_id": stored.agency_id, "created_at": stored.created_at}
        self._table.put(source.id, msgspec.structs.replace(source, **kept))


class InMemoryImportRunRepository(ImportRunRepository):
    """Import runs, and their row errors by line; the in-memory placement writer adds to
    the committed ones."""

    def __init__(self, runs: Table[ImportRun], errors: Table[dict[int, ImportRowError]]) -> None:
        self._runs = runs
        self._errors = errors

    async def add_or_get(self, run: ImportRun) -> ImportRun:
        if (stored := await self.get_by_content(run.agency_id, run.sha256)) is not None:
            return stored
        stored = msgspec.structs.replace(run, progressed_at=run.created_at)
        self._runs.put(run.id, stored)
        return stored

    def _current(self, run_id: UUID, attempt: int) -> ImportRun:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound.of("import run", run_id)
        if run.attempt != attempt:
            raise Conflict(f"import run {run_id} was taken over by another attempt")
        return run

    def _change(self, run_id: UUID, attempt: int, /, **fields: object) -> ImportRun:
        run = msgspec.structs.replace(self._current(run_id, attempt), **fields)
        self._runs.put(run_id, run)
        return run

    async def start(self, run_id: UUID, *, attempt: int, at: datetime) -> ImportRun:
        return self._change(
            run_id,
            attempt,
            status=ImportStatus.RUNNING,
            attempt=attempt + 1,
            started_at=at,
            progressed_at=at,
        )

    async def finish(
        self,
        run_id: UUID,
        *,
        attempt: int,
        status: ImportStatus,
        at: datetime,
        ignored_columns: tuple[str, ...] = (),
        failure_reason: str | None = None,
    ) -> ImportRun:
        return self._change(
            run_id,
            attempt,
            status=status,
            finished_at=at,
            progressed_at=at,
            ignored_columns=ignored_columns,
            failure_reason=failure_reason,
        )

    async def reopen(self, run_id: UUID, *, attempt: int, anew: ImportRun) -> ImportRun:
        failed = self._current(run_id, attempt)
        if failed.status is not ImportStatus.FAILED:
            raise Conflict(f"import run {run_id} has not failed")
        run = failed.reopened_as(anew)
        self._runs.put(run_id, run)
        self._errors.put(run_id, {})
        return run

    async def get(self, agency_id: UUID, run_id: UUID) -> ImportRun | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.agency_id == agency_id else None

    async def get_by_content(self, agency_id: UUID, sha256: str) -> ImportRun | None:
        return next(
            (r for r in self._runs.rows() if r.agency_id == agency_id and r.sha256 == sha256),
            None,
        )

    async def list(
        self,
        agency_id: UUID,
        *,
        after: RunPosition | None,
        limit: int,
        status: ImportStatus | None = None,
        file_source_id: UUID | None = None,
    ) -> list[ImportRun]:
        rows = (
            r
            for r in self._runs.rows()
            if r.agency_id == agency_id
            and (status is None or r.status == status)
            and (file_source_id is None or r.file_source_id == file_source_id)
        )
        key = (after.created_at, after.id) if after else None
        return _descending(rows, lambda r: (r.created_at, r.id), key, limit)

    async def claim_stalled(
        self, before: datetime, after: datetime, limit: int, *, at: datetime
    ) -> list[ImportRun]:
        def stalled(run: ImportRun) -> bool:
            progressed = run.progressed_at
            return (
                run.file_source_id is None
                and run.created_at > after
                and run.status in (ImportStatus.QUEUED, ImportStatus.RUNNING)
                and progressed is not None
                and progressed < before
            )

        runs = sorted(filter(stalled, self._runs.rows()), key=lambda r: (r.created_at, r.id))
        claimed = [msgspec.structs.replace(run, progressed_at=at) for run in runs[:limit]]
        for run in claimed:
            self._runs.put(run.id, run)
        return claimed

    async def errors(
        self, run_id: UUID, *, after_line: int | None, limit: int
    ) -> list[ImportRowError]:
        errors = self._errors.get(run_id) or {}
        lines = sorted(line for line in errors if after_line is None or line > after_line)
        return [errors[line] for line in lines[:limit]]


class InMemoryExportRepository(ExportRepository):
    def __init__(self, table: Table[Export], nightly: Table[tuple[ExportKind, ...]]) -> None:
        self._table = table
        self._nightly = nightly

    async def add(self, export: Export) -> bool:
        if self._table.get(export.id) is not None:
            return False
        self._table.put(export.id, export)
        return True

    async def get(self, agency_id: UUID, export_id: UUID) -> Export | None:
        export = self._table.get(export_id)
        return export if export is not None and export.agency_id == agency_id else None

    def _change(self, export_id: UUID, **fields: object) -> Export:
        export = self._table.get(export_id)
        if export is None:
            raise NotFound.of("export", export_id)
        if export.status in FINISHED_EXPORTS:
            return export
        changed = msgspec.structs.replace(export, **fields)
        self._table.put(export_id, changed)
        return changed

    async def start(self, export_id: UUID, *, at: datetime) -> Export:
        return self._change(export_id, status=ExportStatus.RUNNING, started_at=at)

    async def finish(
        self,
        export_id: UUID,
        *,
        status: ExportStatus,
        at: datetime,
        rows: int | None = None,
        failure_reason: str | None = None,
    ) -> Export:
        return self._change(
            export_id, status=status, finished_at=at, rows=rows, failure_reason=failure_reason
        )

    async def list(
        self,
        agency_id: UUID,
        *,
        after: ExportPosition | None,
        limit: int,
        status: ExportStatus | None = None,
        kind: ExportKind | None = None,
    ) -> list[Export]:
        rows = (
            e
            for e in self._table.rows()
            if e.agency_id == agency_id
            and (status is None or e.status == status)
            and (kind is None or e.kind == kind)
        )
        key = (after.created_at, after.id) if after else None
        return _descending(rows, lambda e: (e.created_at, e.id), key, limit)

    async def created_before(self, moment: datetime, *, limit: int) -> list[Export]:
        return self._oldest(lambda e: e.created_at < moment, limit)

    async def unfinished_before(self, moment: datetime, *, limit: int) -> list[Export]:
        return self._oldest(
            lambda e: e.created_at < moment and e.status not in FINISHED_EXPORTS, limit
        )

    def _oldest(self, condition: Callable[[Export], bool], limit: int) -> list[Export]:
        return sorted(filter(condition, self._table.rows()), key=lambda e: (e.created_at, e.id))[
            :limit
        ]

    async def delete(self, export_id: UUID) -> bool:
        if self._table.get(export_id) is None:
            return False
        self._table.delete(export_id)
        return True

    async def nightly_kinds(
        self, agency_id: UUID | None = None
    ) -> dict[UUID, tuple[ExportKind, ...]]:
        if agency_id is not None:
            kinds = self._nightly.get(agency_id)
            return {} if kinds is None else {agency_id: kinds}
        return dict(self._nightly.items())

    async def choose_nightly_kinds(self, agency_id: UUID, kinds: tuple[ExportKind, ...]) -> None:
        self._nightly.put(agency_id, kinds)


class InMemorySessionRepository(SessionRepository):
    def __init__(
        self,
        sessions: Table[Session],
        tokens: Table[RefreshToken],
        spent: set[UUID],
        users: Table[User],
    ) -> None:
        self._sessions = sessions
        self._tokens = tokens
        self._spent = spent
        self._users = users

    async def add(self, session: Session) -> None:
        self._sessions.put(session.id, session)

    async def get(self, id_: UUID) -> Session | None:
        return self._sessions.get(id_)

    async def get_with_user(self, id_: UUID) -> tuple[Session, User] | None:
        session = self._sessions.get(id_)
        user = None if session is None else self._users.get(session.user_id)
        return None if session is None or user is None else (session, user)

    async def revoke(self, id_: UUID, at: datetime) -> bool:
        session = self._sessions.get(id_)
        if session is None or session.revoked_at is not None:
            return False
        self._sessions.put(id_, msgspec.structs.replace(session, revoked_at=at))
        return True

    async def add_token(self, token: RefreshToken) -> None:
        self._tokens.put(token.id, token)

    async def get_token(self, token_hash: str) -> RefreshToken | None:
        return next((t for t in self._tokens.rows() if t.token_hash == token_hash), None)

    async def use_token(self, id_: UUID, at: datetime) -> bool:
        token = self._tokens.get(id_)
        if token is None or token.used_at is not None or id_ in self._spent:
            return False
        self._spent.add(id_)
        self._tokens.put(id_, msgspec.structs.replace(token, used_at=at))
        return True

    async def purge_ended(self, now: datetime) -> PurgedSessions:
        revoked = {s.id for s in self._sessions.rows() if s.revoked_at is not None}
        ended = [t for t in self._tokens.rows() if t.expires_at <= now or t.session_id in revoked]
        for token in ended:
            self._tokens.delete(token.id)
            # A spent id whose row is gone matters no more; if this unit of work rolls back,
            # the row keeps its used_at, which refuses it just the same.
            self._spent.discard(token.id)
        holding = {t.session_id for t in self._tokens.rows()}
        orphans = [s.id for s in self._sessions.rows() if s.id not in holding]
        for id_ in orphans:
            self._sessions.delete(id_)
        return PurgedSessions(sessions=len(orphans), refresh_tokens=len(ended))


class InMemoryPaymentRepository(PaymentRepository):
    """Payments; a payment's phases go step by step through the unit of work's ``others``."""

    def __init__(
        self,
        table: Table[Payment],
        refunds: Table[Refund],
        accounts: Table[Account],
        committed: dict[UUID, Payment],
        on_rollback: Callable[[Callable[[], None]], None],
        others: UnitOfWork,
    ) -> None:
        self._table = table
        self._refunds = refunds
        self._accounts = accounts
        self._committed = committed
        self._on_rollback = on_rollback
        self._steps = PaymentSteps(
            payments=self,
            swap=self._swap,
            commit=others.commit,
            accounts=others.accounts,
            agencies=others.agencies,
            processors=others.payment_processors,
            idempotency=others.idempotency,
            audit_log=others.audit_log,
        )

    async def payable(self, account_id: UUID, processor_id: UUID) -> Payable | None:
        return await self._steps.payable(account_id, processor_id)

    async def open(self, opening: Opening) -> Opened:
        return await self._steps.open(opening)

    async def settle(self, settling: Settling) -> IdempotencyRecord | None:
        return await self._steps.settle(settling)

    async def _swap(self, before: Payment, after: Payment) -> bool:
        # Straight into the committed row, as an atomic UPDATE would; undone on rollback.
        current = self._committed.get(before.id)
        if (
            current is None
            or current.status is not PaymentStatus.PENDING
            or current.gateway_reference != before.gateway_reference
        ):
            return False
        self._committed[before.id] = after
        self._on_rollback(lambda: self._committed.__setitem__(before.id, current))
        return True

    async def lock(self, id_: UUID) -> Payment | None:
        # Nothing can come between: units of work share one event loop, and none of this
        # store's calls gives it up between a read and the commit.
        return await self.get(id_)

    async def reserve_refund(self, id_: UUID, amount: int) -> bool:
        # Straight into the committed row, as an atomic UPDATE would; undone on rollback.
        payment = self._committed.get(id_)
        if payment is None or payment.status is not PaymentStatus.COMPLETED:
            return False
        if not 0 <= payment.refunded_amount + amount <= payment.amount:
            return False
        self._add_refunded(id_, amount)
        self._on_rollback(lambda: self._add_refunded(id_, -amount))
        return True

    def _add_refunded(self, id_: UUID, amount: int) -> None:
        payment = self._committed[id_]
        self._committed[id_] = msgspec.structs.replace(
            payment, refunded_amount=payment.refunded_amount + amount
        )

    async def add(self, payment: Payment) -> None:
        self._table.put(payment.id, payment)

    async def get(self, id_: UUID) -> Payment | None:
        return self._table.get(id_)

    async def get_by_reference(self, reference: str) -> Payment | None:
        known = (p for p in self._table.rows() if p.gateway_reference == reference)
        return min(known, key=lambda p: (p.created_at, p.id), default=None)

    async def update(self, payment: Payment) -> None:
        if self._table.get(payment.id) is not None:
            self._table.put(payment.id, payment)

    async def list(self, query: PaymentQuery) -> list[Payment]:
        def matches(p: Payment) -> bool:
            if p.agency_id != query.agency_id:
                return False
            if query.account_id is not None and p.account_id != query.account_id:
                return False
            if query.status is not None and p.status != query.status:
                return False
            if query.collector_id is not None:
                account = self._accounts.get(p.account_id)
                return account is not None and account.assigned_collector_id == query.collector_id
            return True

        after = (query.after.created_at, query.after.id) if query.after else None
        return _descending(
            filter(matches, self._table.rows()), lambda p: (p.created_at, p.id), after, query.limit
        )

    async def pending_since(
        self,
        before: datetime,
        limit: int,
        *,
        after: datetime,
        following: PaymentPosition | None = None,
    ) -> list[Payment]:
        start = (following.created_at, following.id) if following is not None else None
        stuck = [
            p
            for p in self._table.rows()
            if p.status is PaymentStatus.PENDING
            and p.created_at < before
            and (p.created_at > after or p.gateway_reference is not None)
            and (start is None or (p.created_at, p.id) > start)
        ]
        return sorted(stuck, key=lambda p: (p.created_at, p.id))[:limit]

    async def add_refund(self, refund: Refund) -> None:
        self._refunds.put(refund.id, refund)

    async def refund(self, id_: UUID) -> Refund | None:
        return self._refunds.get(id_)

    async def complete_refund(self, id_: UUID, reference: str, at: datetime) -> None:
        refund = self._refunds.get(id_)
        if refund is not None:
            completed = msgspec.structs.replace(
                refund, status=RefundStatus.COMPLETED, gateway_reference=reference, completed_at=at
            )
            self._refunds.put(id_, completed)

    async def fail_refund(self, id_: UUID, reference: str | None, at: datetime) -> None:
        refund = self._refunds.get(id_)
        if refund is not None:
            failed = msgspec.structs.replace(
                refund, status=RefundStatus.FAILED, gateway_reference=reference, failed_at=at
            )
            self._refunds.put(id_, failed)

    async def remove_refund(self, id_: UUID) -> None:
        refund = self._refunds.get(id_)
        if refund is not None and refund.status is RefundStatus.PENDING:
            self._refunds.delete(id_)

    async def refunds(self, payment_id: UUID) -> list[Refund]:
        return sorted(
            (r for r in self._refunds.rows() if r.payment_id == payment_id),
            key=lambda r: (r.created_at, r.id),
        )

    async def pending_refunds(
        self,
        before: datetime,
        limit: int,
        *,
        after: datetime,
        following: RefundPosition | None = None,
    ) -> list[Refund]:
        start = (following.created_at, following.id) if following is not None else None
        pending = [
            r
            for r in self._refunds.rows()
            if r.status is RefundStatus.PENDING
            and after < r.created_at < before
            and (start is None or (r.created_at, r.id) > start)
        ]
        return sorted(pending, key=lambda r: (r.created_at, r.id))[:limit]


class InMemoryIdempotencyRepository(IdempotencyRepository):
    """Claims land in the shared store at once (as a unique insert would be seen by a
    concurrent one) and are withdrawn if the unit of work rolls back."""

    def __init__(
        self,
        records: dict[tuple[UUID, str], IdempotencyRecord],
        on_rollback: Callable[[Callable[[], None]], None],
    ) -> None:
        self._records = records
        self._on_rollback = on_rollback

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        slot = (record.agency_id, record.key)
        if slot in self._records:
            return self._records[slot]
        self._records[slot] = record
        self._on_rollback(lambda: self._records.pop(slot, None))
        return None

    async def finish(
        self, agency_id: UUID, key: str, outcome: str, response: dict[str, Any]
    ) -> IdempotencyRecord | None:
        slot = (agency_id, key)
        before = self._records.get(slot)
        if before is None:
            return None
        after = msgspec.structs.replace(
            before, state=IdempotencyState.DONE, outcome=outcome, response=response
        )
        self._records[slot] = after
        self._on_rollback(lambda: self._records.__setitem__(slot, before))
        return after

    async def release(self, agency_id: UUID, key: str) -> None:
        slot = (agency_id, key)
        before = self._records.pop(slot, None)
        if before is not None:
            self._on_rollback(lambda: self._records.__setitem__(slot, before))

    async def purge_expired(self, now: datetime) -> int:
        expired = [slot for slot, r in self._records.items() if r.expires_at <= now]
        for slot in expired:
            del self._records[slot]
        return len(expired)


class InMemoryGatewayEventRepository(GatewayEventRepository):
    """Events land in the shared store at once (as a unique insert would be seen by a
    concurrent one) and are withdrawn if the unit of work rolls back."""

    def __init__(
        self,
        events: dict[str, GatewayEvent],
        on_rollback: Callable[[Callable[[], None]], None],
    ) -> None:
        self._events = events
        self._on_rollback = on_rollback

    async def record(self, event: GatewayEvent) -> bool:
        if event.id in self._events:
            return False
        self._events[event.id] = event
        self._on_rollback(lambda: self._events.pop(event.id, None))
        return True

    async def get(self, id_: str) -> GatewayEvent | None:
        return self._events.get(id_)

    async def unapplied(
        self, *, received_before: datetime, received_after: datetime, limit: int
    ) -> list[str]:
        waiting = sorted(
            (e.received_at, e.id)
            for e in self._events.values()
            if e.processed_at is None and received_after < e.received_at < received_before
        )
        return [id_ for _, id_ in waiting[:limit]]

    async def mark_processed(self, id_: str, outcome: str, at: datetime) -> str | None:
        before = self._events.get(id_)
        if before is None or before.processed_at is not None:
            return None if before is None else before.outcome
        self._events[id_] = msgspec.structs.replace(before, processed_at=at, outcome=outcome)
        self._on_rollback(lambda: self._events.__setitem__(id_, before))
        return outcome
