"""Repositories in SQLAlchemy Core over one connection: the unit of work's transaction.

On PostgreSQL the reads on every request go through psycopg instead (``reads``, see
:mod:`~debtflow_adapters.persistence.psycopg_reads`) on the same connection.

Rows map to entities explicitly, field by field. A duplicate key or a reference to a
missing row becomes :class:`~debtflow_core.errors.Conflict`; no SQLAlchemy error leaves here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from debtflow_adapters.persistence.psycopg_reads import PsycopgReads
from debtflow_adapters.persistence.statements import (
    first,
    insert,
    integrity_error_as_conflict,
    keyset_page,
    write_lock_on_sqlite,
)
from debtflow_adapters.persistence.tables import (
    accounts,
    activities,
    agencies,
    audit_log,
    debtors,
    payment_processors,
    refresh_tokens,
    sessions,
    users,
)
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.activity import Activity, ActivityType, PromiseToPay
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.debtor import ContactPreferences, Debtor, Phone, PostalAddress
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.domain.session import RefreshToken, Session
from debtflow_core.domain.user import EMAIL_TAKEN, Role, User
from debtflow_core.ports.accounts import AccountQuery, AccountRepository, AccountSort
from debtflow_core.ports.activities import ActivityQuery, ActivityRepository
from debtflow_core.ports.agencies import AgencyRepository
from debtflow_core.ports.audit_log import AuditLogRepository, AuditQuery
from debtflow_core.ports.debtors import DebtorQuery, DebtorRepository
from debtflow_core.ports.payment_processors import PaymentProcessorRepository
from debtflow_core.ports.sessions import PurgedSessions, SessionRepository
from debtflow_core.ports.users import UserQuery, UserRepository

T = TypeVar("T")


def _contains_text(column: sa.ColumnElement[str], text: str) -> sa.ColumnElement[bool]:
    """Case-insensitive substring match; ``%`` and ``_`` in ``text`` are literal.

    The database lowers both sides, with the same lower(): PostgreSQL's lowered "İ" and a
    final "Σ" otherwise than Python's str.lower() did, and a name searched for as stored
    was not found.
    """
    pattern = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return sa.func.lower(column, type_=sa.Text).contains(
        sa.func.lower(sa.literal(pattern, sa.Text)), escape="/"
    )


_debtor_full_name = debtors.c.first_name + " " + debtors.c.last_name


def _by_code_point(
    connection: AsyncConnection, column: sa.ColumnElement[str]
) -> sa.ColumnElement[str]:
    """``column`` compared and ordered by code point, as Python compares strings: the port
    promises one order everywhere, and a locale's collation (en_US, say, which skips
    punctuation at first) would move rows and the pages' boundaries. PostgreSQL's "C"
    collation compares the UTF-8 bytes, as SQLite does unless told otherwise."""
    return column.collate("C") if connection.dialect.name == "postgresql" else column


def _columns(table: sa.Table, entity: type[msgspec.Struct]) -> tuple[sa.Column[Any], ...]:
    """``table``'s columns in the order of ``entity``'s fields (columns are named after them).

    The reads on every request (sessions, users, accounts) select these, so that a row maps
    to its entity by position: reading a SQLAlchemy row's values by name took about three
    times as long, 0.65 ms for a page of 50 accounts on a small server.
    """
    return tuple(table.c[name] for name in entity.__struct_fields__)


_USER_COLUMNS = _columns(users, User)
_ACCOUNT_COLUMNS = _columns(accounts, Account)
_SESSION_COLUMNS = _columns(sessions, Session)

# Built once, not per call: authenticating and reading an account run on every request.
_USER_BY_ID = sa.select(*_USER_COLUMNS).where(users.c.id == sa.bindparam("id_"))
_ACCOUNT_BY_ID = sa.select(*_ACCOUNT_COLUMNS).where(accounts.c.id == sa.bindparam("id_"))
_ACCOUNT_LOCKED = _ACCOUNT_BY_ID.with_for_update()
_SESSION_BY_ID = sa.select(*_SESSION_COLUMNS).where(sessions.c.id == sa.bindparam("id_"))
_SESSION_WITH_USER = (
    sa.select(*_SESSION_COLUMNS, *_USER_COLUMNS)
    .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
    .where(sessions.c.id == sa.bindparam("id_"))
)


def _agency(row: Row[Any]) -> Agency:
    return Agency(
        id=row.id,
        slug=row.slug,
        name=row.name,
        created_at=row.created_at,
        allow_overpayment=row.allow_overpayment,
    )


def _user(row: Sequence[Any]) -> User:
    """A row of :data:`_USER_COLUMNS` as a User."""
    values = dict(zip(User.__struct_fields__, row, strict=True))
    values["role"] = Role(values["role"])
    return User(**values)


def _debtor(row: Row[Any]) -> Debtor:
    return Debtor(
        id=row.id,
        agency_id=row.agency_id,
        external_id=row.external_id,
        first_name=row.first_name,
        last_name=row.last_name,
        date_of_birth=row.date_of_birth,
        phones=msgspec.convert(row.phones, tuple[Phone, ...]),
        emails=tuple(row.emails),
        address=msgspec.convert(row.address, PostalAddress | None),
        contact_preferences=msgspec.convert(row.contact_preferences, ContactPreferences),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _debtor_values(debtor: Debtor) -> dict[str, Any]:
    return {
        **msgspec.structs.asdict(debtor),
        "phones": msgspec.to_builtins(debtor.phones),
        "emails": list(debtor.emails),
        "address": msgspec.to_builtins(debtor.address),
        "contact_preferences": msgspec.to_builtins(debtor.contact_preferences),
    }


def _account(row: Row[Any]) -> Account:
    """A row of :data:`_ACCOUNT_COLUMNS` as an Account."""
    values = dict(zip(Account.__struct_fields__, row, strict=True))
    values["status"] = AccountStatus(values["status"])
    return Account(**values)


def _activity(row: Row[Any]) -> Activity:
    return Activity(
        id=row.id,
        agency_id=row.agency_id,
        account_id=row.account_id,
        type=ActivityType(row.type),
        outcome=row.outcome,
        note=row.note,
        promise=msgspec.convert(row.promise, PromiseToPay | None),
        actor_id=row.actor_id,
        occurred_at=row.occurred_at,
    )


def _audit_entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        agency_id=row.agency_id,
        actor_id=row.actor_id,
        action=row.action,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        before=row.before,
        after=row.after,
        occurred_at=row.occurred_at,
    )


def _payment_processor(row: Row[Any]) -> PaymentProcessor:
    return PaymentProcessor(
        id=row.id,
        agency_id=row.agency_id,
        name=row.name,
        kind=ProcessorKind(row.kind),
        active=row.active,
        created_at=row.created_at,
    )


def _session(row: Sequence[Any]) -> Session:
    """A row of :data:`_SESSION_COLUMNS` as a Session."""
    return Session(**dict(zip(Session.__struct_fields__, row, strict=True)))


def _session_with_user(row: Row[Any]) -> tuple[Session, User]:
    """A row of :data:`_SESSION_COLUMNS` then :data:`_USER_COLUMNS`."""
    split = len(_SESSION_COLUMNS)
    return _session(row[:split]), _user(row[split:])


def _refresh_token(row: Row[Any]) -> RefreshToken:
    return RefreshToken(
        id=row.id,
        session_id=row.session_id,
        token_hash=row.token_hash,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


class SqlAgencyRepository(AgencyRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, agency: Agency) -> None:
        await insert(
            self._connection,
            agencies,
            msgspec.structs.asdict(agency),
            duplicate=f"the slug {agency.slug!r} is taken",
        )

    async def get(self, id_: UUID) -> Agency | None:
        return await first(
            self._connection, sa.select(agencies).where(agencies.c.id == id_), _agency
        )

    async def lock(self, id_: UUID) -> Agency | None:
        # Agencies have no updated_at: the name, which no key or index holds, is rewritten.
        await write_lock_on_sqlite(self._connection, agencies, id_, rewrite=agencies.c.name)
        # FOR NO KEY UPDATE, not FOR UPDATE: every insert of a row that names the agency
        # takes FOR KEY SHARE on it, and would otherwise wait for this transaction.
        statement = sa.select(agencies).where(agencies.c.id == id_).with_for_update(key_share=True)
        return await first(self._connection, statement, _agency)

    async def get_by_slug(self, slug: str) -> Agency | None:
        statement = sa.select(agencies).where(agencies.c.slug == slug)
        return await first(self._connection, statement, _agency)

    async def ids(self) -> list[UUID]:
        return list((await self._connection.execute(sa.select(agencies.c.id))).scalars())


class SqlUserRepository(UserRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, user: User) -> None:
        await insert(
            self._connection,
            users,
            msgspec.structs.asdict(user),
            duplicate=EMAIL_TAKEN,
            dangling=f"the agency {user.agency_id} does not exist",
        )

    async def get(self, id_: UUID) -> User | None:
        return await first(self._connection, _USER_BY_ID, _user, {"id_": id_})

    async def get_by_email(self, email: str) -> User | None:
        statement = sa.select(*_USER_COLUMNS).where(users.c.email == email)
        return await first(self._connection, statement, _user)

    async def list(self, query: UserQuery) -> list[User]:
        statement = sa.select(*_USER_COLUMNS).where(users.c.agency_id == query.agency_id)
        if query.role is not None:
            statement = statement.where(users.c.role == query.role)
        if query.active is not None:
            statement = statement.where(users.c.active == query.active)
        email = _by_code_point(self._connection, users.c.email)
        after = (query.after.email,) if query.after else None
        statement = keyset_page(statement, (email,), after, query.limit, descending=False)
        return [_user(row) for row in await self._connection.execute(statement)]

    async def update(self, user: User) -> None:
        await self._connection.execute(
            sa.update(users)
            .where(users.c.id == user.id)
            .values(
                role=user.role,
                full_name=user.full_name,
                active=user.active,
                password_hash=user.password_hash,
            )
        )


class SqlDebtorRepository(DebtorRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, debtor: Debtor) -> None:
        await insert(
            self._connection,
            debtors,
            _debtor_values(debtor),
            duplicate=f"a debtor with the external id {debtor.external_id!r} exists",
            dangling=f"the agency {debtor.agency_id} does not exist",
        )

    async def get(self, id_: UUID) -> Debtor | None:
        return await first(self._connection, sa.select(debtors).where(debtors.c.id == id_), _debtor)

    async def lock(self, id_: UUID) -> Debtor | None:
        await write_lock_on_sqlite(self._connection, debtors, id_)
        return await first(
            self._connection,
            sa.select(debtors).where(debtors.c.id == id_).with_for_update(),
            _debtor,
        )

    async def get_by_external_id(self, agency_id: UUID, external_id: str) -> Debtor | None:
        statement = sa.select(debtors).where(
            debtors.c.agency_id == agency_id, debtors.c.external_id == external_id
        )
        return await first(self._connection, statement, _debtor)

    async def update(self, debtor: Debtor) -> None:
        values = _debtor_values(debtor)
        for fixed in ("id", "agency_id", "created_at"):
            del values[fixed]
        statement = sa.update(debtors).where(debtors.c.id == debtor.id).values(values)
        with integrity_error_as_conflict(
            f"a debtor with the external id {debtor.external_id!r} exists"
        ):
            await self._connection.execute(statement)

    async def search(self, query: DebtorQuery) -> list[Debtor]:
        statement = sa.select(debtors).where(debtors.c.agency_id == query.agency_id)
        if query.text is not None:
            statement = statement.where(
                sa.or_(
                    _contains_text(_debtor_full_name, query.text),
                    _contains_text(debtors.c.external_id, query.text),
                )
            )
        if query.collector_id is not None:
            statement = statement.where(
                sa.exists().where(
                    accounts.c.debtor_id == debtors.c.id,
                    accounts.c.assigned_collector_id == query.collector_id,
                )
            )
        after = (query.after.created_at, query.after.id) if query.after else None
        statement = keyset_page(statement, (debtors.c.created_at, debtors.c.id), after, query.limit)
        return [_debtor(row) for row in await self._connection.execute(statement)]


class SqlAccountRepository(AccountRepository):
    def __init__(self, connection: AsyncConnection, reads: PsycopgReads | None = None) -> None:
        self._connection = connection
        self._reads = reads

    async def add(self, account: Account) -> None:
        await insert(
            self._connection,
            accounts,
            msgspec.structs.asdict(account),
            duplicate=f"an account with the external id {account.external_id!r} exists",
            dangling="the account's agency, debtor or collector does not exist",
        )

    async def get(self, id_: UUID) -> Account | None:
        if self._reads is not None:
            return await self._reads.account(id_)
        return await first(self._connection, _ACCOUNT_BY_ID, _account, {"id_": id_})

    async def lock(self, id_: UUID) -> Account | None:
        await write_lock_on_sqlite(self._connection, accounts, id_)
        return await first(self._connection, _ACCOUNT_LOCKED, _account, {"id_": id_})

    async def get_by_external_id(self, agency_id: UUID, external_id: str) -> Account | None:
        statement = sa.select(*_ACCOUNT_COLUMNS).where(
            accounts.c.agency_id == agency_id, accounts.c.external_id == external_id
        )
        return await first(self._connection, statement, _account)

    async def update(self, account: Account) -> None:
        statement = (
            sa.update(accounts)
            .where(accounts.c.id == account.id)
            .values(
                status=account.status,
                assigned_collector_id=account.assigned_collector_id,
                original_creditor=account.original_creditor,
                charge_off_date=account.charge_off_date,
                placed_at=account.placed_at,
                updated_at=account.updated_at,
            )
        )
        with integrity_error_as_conflict(
            f"the collector {account.assigned_collector_id} does not exist"
        ):
            await self._connection.execute(statement)

    async def adjust_balance(self, id_: UUID, delta: int, *, floor: int | None = 0) -> int | None:
        # One UPDATE: the row lock serializes concurrent adjustments, and the floor is
        # checked against the balance as it is when the lock is held.
        new_balance = accounts.c.current_balance + delta
        statement = (
            sa.update(accounts).where(accounts.c.id == id_).values(current_balance=new_balance)
        )
        if floor is not None:
            statement = statement.where(new_balance >= floor)
        result = await self._connection.execute(statement.returning(accounts.c.current_balance))
        return result.scalar_one_or_none()

    async def release_collector(
        self, agency_id: UUID, collector_id: UUID, *, at: datetime
    ) -> list[Account]:
        statement = (
            sa.update(accounts)
            .where(accounts.c.agency_id == agency_id)
            .where(accounts.c.assigned_collector_id == collector_id)
            .values(assigned_collector_id=None, updated_at=at)
            .returning(*_ACCOUNT_COLUMNS)
        )
        return [_account(row) for row in await self._connection.execute(statement)]

    async def list(self, query: AccountQuery) -> list[Account]:
        if self._reads is not None and query.text is None:
            return await self._reads.accounts(query)
        statement = sa.select(*_ACCOUNT_COLUMNS).where(accounts.c.agency_id == query.agency_id)
        if query.status is not None:
            statement = statement.where(accounts.c.status == query.status)
        if query.collector_id is not None:
            statement = statement.where(accounts.c.assigned_collector_id == query.collector_id)
        if query.unassigned:
            statement = statement.where(accounts.c.assigned_collector_id.is_(None))
        if query.debtor_id is not None:
            statement = statement.where(accounts.c.debtor_id == query.debtor_id)
        if query.min_balance is not None:
            statement = statement.where(accounts.c.current_balance >= query.min_balance)
        if query.max_balance is not None:
            statement = statement.where(accounts.c.current_balance <= query.max_balance)
        if query.text is not None:
            statement = statement.join(debtors, debtors.c.id == accounts.c.debtor_id).where(
                sa.or_(
                    _contains_text(_debtor_full_name, query.text),
                    _contains_text(accounts.c.external_id, query.text),
                )
            )
        after = query.after
        if query.sort is AccountSort.NEWEST:
            statement = keyset_page(
                statement,
                (accounts.c.placed_at, accounts.c.id),
                (after.placed_at, after.id) if after else None,
                query.limit,
            )
        else:
            statement = keyset_page(
                statement,
                (accounts.c.current_balance, accounts.c.id),
                (after.balance, after.id) if after else None,
                query.limit,
                descending=query.sort is AccountSort.BALANCE_DESC,
            )
        return [_account(row) for row in await self._connection.execute(statement)]


class SqlActivityRepository(ActivityRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, activity: Activity) -> None:
        await insert(
            self._connection,
            activities,
            {
                **msgspec.structs.asdict(activity),
                "promise": msgspec.to_builtins(activity.promise),
            },
            duplicate=f"an activity with the id {activity.id} exists",
            dangling="the activity's agency, account or actor does not exist",
        )

    async def list(self, query: ActivityQuery) -> list[Activity]:
        statement = sa.select(activities).where(activities.c.account_id == query.account_id)
        after = (query.after.occurred_at, query.after.id) if query.after else None
        statement = keyset_page(
            statement, (activities.c.occurred_at, activities.c.id), after, query.limit
        )
        return [_activity(row) for row in await self._connection.execute(statement)]


class SqlAuditLogRepository(AuditLogRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, entry: AuditEntry) -> None:
        await insert(
            self._connection,
            audit_log,
            msgspec.structs.asdict(entry),
            duplicate=f"an audit entry with the id {entry.id} exists",
        )

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        statement = sa.select(audit_log).where(audit_log.c.agency_id == query.agency_id)
        if query.entity_type is not None:
            statement = statement.where(audit_log.c.entity_type == query.entity_type)
        if query.entity_id is not None:
            statement = statement.where(audit_log.c.entity_id == query.entity_id)
        if query.actor_id is not None:
            statement = statement.where(audit_log.c.actor_id == query.actor_id)
        if query.since is not None:
            statement = statement.where(audit_log.c.occurred_at >= query.since)
        if query.until is not None:
            statement = statement.where(audit_log.c.occurred_at < query.until)
        after = (query.after.occurred_at, query.after.id) if query.after else None
        statement = keyset_page(
            statement, (audit_log.c.occurred_at, audit_log.c.id), after, query.limit
        )
        return [_audit_entry(row) for row in await self._connection.execute(statement)]


class SqlPaymentProcessorRepository(PaymentProcessorRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, processor: PaymentProcessor) -> None:
        await insert(
            self._connection,
            payment_processors,
            msgspec.structs.asdict(processor),
            duplicate=f"a payment processor with the id {processor.id} exists",
            dangling=f"the agency {processor.agency_id} does not exist",
        )

    async def get(self, id_: UUID) -> PaymentProcessor | None:
        statement = sa.select(payment_processors).where(payment_processors.c.id == id_)
        return await first(self._connection, statement, _payment_processor)

    async def list(self, agency_id: UUID) -> list[PaymentProcessor]:
        result = await self._connection.execute(
            sa.select(payment_processors).where(payment_processors.c.agency_id == agency_id)
        )
        # Sorted here for the same reason as users: one order on every database.
        return sorted(map(_payment_processor, result), key=lambda processor: processor.name)


class SqlSessionRepository(SessionRepository):
    def __init__(self, connection: AsyncConnection, reads: PsycopgReads | None = None) -> None:
        self._connection = connection
        self._reads = reads

    async def add(self, session: Session) -> None:
        await insert(
            self._connection,
            sessions,
            msgspec.structs.asdict(session),
            duplicate=f"a session with the id {session.id} exists",
            dangling="the session's agency or user does not exist",
        )

    async def get(self, id_: UUID) -> Session | None:
        return await first(self._connection, _SESSION_BY_ID, _session, {"id_": id_})

    async def get_with_user(self, id_: UUID) -> tuple[Session, User] | None:
        if self._reads is not None:
            return await self._reads.session_with_user(id_)
        return await first(self._connection, _SESSION_WITH_USER, _session_with_user, {"id_": id_})

    async def revoke(self, id_: UUID, at: datetime) -> bool:
        """Of two concurrent revocations, the second waits on the row lock, then finds
        ``revoked_at`` set and updates nothing: one of them is audited."""
        result = await self._connection.execute(
            sa.update(sessions)
            .where(sessions.c.id == id_, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return result.rowcount == 1

    async def add_token(self, token: RefreshToken) -> None:
        await insert(
            self._connection,
            refresh_tokens,
            msgspec.structs.asdict(token),
            duplicate="this refresh token exists",
            dangling=f"the session {token.session_id} does not exist",
        )

    async def get_token(self, token_hash: str) -> RefreshToken | None:
        statement = sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        return await first(self._connection, statement, _refresh_token)

    async def use_token(self, id_: UUID, at: datetime) -> bool:
        """The conditional UPDATE is the atomic step: a concurrent refresh with the same
        token waits on the row lock, then finds ``used_at`` set and updates nothing."""
        result = await self._connection.execute(
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.id == id_, refresh_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        return result.rowcount == 1

    async def purge_ended(self, now: datetime) -> PurgedSessions:
        revoked = sa.select(sessions.c.id).where(sessions.c.revoked_at.is_not(None))
        tokens = await self._connection.execute(
            sa.delete(refresh_tokens)
            .where(
                sa.or_(refresh_tokens.c.expires_at <= now, refresh_tokens.c.session_id.in_(revoked))
            )
            .execution_options(preserve_rowcount=True)
        )
        # A login adds its session and first token in one transaction: a session without a
        # token is one whose tokens were all just purged.
        holding = sa.select(refresh_tokens.c.id).where(refresh_tokens.c.session_id == sessions.c.id)
        orphans = await self._connection.execute(
            sa.delete(sessions).where(~sa.exists(holding)).execution_options(preserve_rowcount=True)
        )
        return PurgedSessions(sessions=orphans.rowcount, refresh_tokens=tokens.rowcount)
