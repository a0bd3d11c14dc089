"""The report reader in SQLAlchemy Core: every figure is a ``GROUP BY`` in the database.

Each call takes a connection of its own from the engine's pool and runs its few queries
there; on PostgreSQL in one REPEATABLE READ transaction, so that the groups of one report
come from one snapshot (at READ COMMITTED, a payment completing between two queries could
appear by collector and not by day). Sums come back from PostgreSQL as ``numeric`` and are
turned into ``int`` exactly.

Computed keys (a UTC day, a month, an age band) are grouped in an outer query over a
subquery: PostgreSQL does not see two bound parameters as the same expression, so
``GROUP BY`` on an expression with parameters fails when the select list repeats it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from debtflow_adapters.persistence.tables import (
    accounts,
    activities,
    import_runs,
    payments,
    refunds,
    users,
)
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.domain.payment import PaymentStatus, RefundStatus
from debtflow_core.domain.user import Role
from debtflow_core.ports.reports import (
    ActivityTally,
    AgeBand,
    AssignmentTally,
    BandTally,
    CollectionTallies,
    CollectorTally,
    DayTally,
    ImportTally,
    PerformanceTallies,
    Period,
    PlacementTally,
    ProcessorTally,
    PromiseTally,
    ReportReader,
)

_OPEN = [AccountStatus.ACTIVE.value, AccountStatus.DISPUTED.value]
_COMPLETED = PaymentStatus.COMPLETED.value
_REFUNDED = RefundStatus.COMPLETED.value


def _utc_day(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    # SQLite keeps UTC times as "YYYY-MM-DD HH:MM:SS…" text.
    return sa.type_coerce(sa.func.substr(column, 1, 10), sa.Date)


def _utc_month(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[str]:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM")
    return sa.func.substr(column, 1, 7)


def _promised(dialect: str) -> sa.ColumnElement[Any]:
    """The promised amount inside the activity's JSON, as a 64-bit integer."""
    if dialect == "postgresql":
        return sa.cast(activities.c.promise.op("->>")("amount"), sa.BigInteger)
    return sa.func.json_extract(activities.c.promise, "$.amount")


def _within(column: sa.ColumnElement[Any], period: Period) -> sa.ColumnElement[bool]:
    return sa.and_(column >= period.start, column < period.end)


def _count_sum(amount: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], ...]:
    return (sa.func.count().label("count"), sa.func.sum(amount).label("amount"))


async def _rows(connection: AsyncConnection, statement: sa.Select[Any]) -> Sequence[Any]:
    return (await connection.execute(statement)).all()


class SqlReportReader(ReportReader):
    """Grouped figures of one agency, straight from the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="REPEATABLE READ")
            yield connection

    async def collections(self, agency_id: UUID, period: Period) -> CollectionTallies:
        async with self._snapshot() as connection:
            dialect = connection.dialect.name
            taken = sa.and_(
                payments.c.agency_id == agency_id,
                payments.c.status == _COMPLETED,
                _within(payments.c.created_at, period),
            )
            paid = payments.join(accounts, accounts.c.id == payments.c.account_id)
            refunded = refunds.join(payments, payments.c.id == refunds.c.payment_id).join(
                accounts, accounts.c.id == payments.c.account_id
            )
            made = sa.and_(
                refunds.c.agency_id == agency_id,
                refunds.c.status == _REFUNDED,
                _within(refunds.c.completed_at, period),
            )
            sides = [
                (paid, taken, payments.c.amount, payments.c.created_at),
                (refunded, made, refunds.c.amount, refunds.c.completed_at),
            ]
            groups: list[list[Any]] = []
            for source, where, amount, at in sides:
                collector = accounts.c.assigned_collector_id
                currency = payments.c.currency
                by_collector = (
                    sa.select(collector, currency, *_count_sum(amount))
                    .select_from(source)
                    .where(where)
                    .group_by(collector, currency)
                )
                processor = payments.c.processor_id
                by_processor = (
                    sa.select(processor, currency, *_count_sum(amount))
                    .select_from(source)
                    .where(where)
                    .group_by(processor, currency)
                )
                days = (
                    sa.select(_utc_day(at, dialect).label("day"), currency, amount.label("amount"))
                    .select_from(source)
                    .where(where)
                    .subquery()
                )
                by_day = sa.select(
                    days.c.day, days.c.currency, *_count_sum(days.c.amount)
                ).group_by(days.c.day, days.c.currency)
                groups.append(
                    [
                        [
                            CollectorTally(
                                collector_id=r[0], currency=r[1], count=r[2], amount=int(r[3])
                            )
                            for r in await _rows(connection, by_collector)
                        ],
                        [
                            ProcessorTally(
                                processor_id=r[0], currency=r[1], count=r[2], amount=int(r[3])
                            )
                            for r in await _rows(connection, by_processor)
                        ],
                        [
                            DayTally(day=r[0], currency=r[1], count=r[2], amount=int(r[3]))
                            for r in await _rows(connection, by_day)
                        ],
                    ]
                )
        (pc, pp, pd), (rc, rp, rd) = groups
        return CollectionTallies(
            payments_by_collector=pc,
            payments_by_processor=pp,
            payments_by_day=pd,
            refunds_by_collector=rc,
            refunds_by_processor=rp,
            refunds_by_day=rd,
        )

    async def aging(self, agency_id: UUID, bands: list[AgeBand]) -> list[BandTally]:
        charged_off = accounts.c.charge_off_date
        cases = []
        for band in bands:
            if band.unknown:
                cases.append((charged_off.is_(None), band.name))
                continue
            bounds = [sa.true()]
            if band.since is not None:
                bounds.append(charged_off >= band.since)
            if band.until is not None:
                bounds.append(charged_off <= band.until)
            cases.append((sa.and_(charged_off.is_not(None), *bounds), band.name))
        banded = (
            sa.select(
                sa.case(*cases).label("band"),
                accounts.c.currency,
                accounts.c.current_balance,
            )
            .where(accounts.c.agency_id == agency_id, accounts.c.status.in_(_OPEN))
            .subquery()
        )
        statement = sa.select(
            banded.c.band, banded.c.currency, *_count_sum(banded.c.current_balance)
        ).group_by(banded.c.band, banded.c.currency)
        async with self._snapshot() as connection:
            rows = await _rows(connection, statement)
        return [BandTally(band=r[0], currency=r[1], count=r[2], amount=int(r[3])) for r in rows]

    async def recovery(self, agency_id: UUID, period: Period) -> list[PlacementTally]:
        placed = sa.and_(accounts.c.agency_id == agency_id, _within(accounts.c.placed_at, period))
        paid = (
            sa.select(payments.c.account_id, sa.func.sum(payments.c.amount).label("total"))
            .select_from(payments.join(accounts, accounts.c.id == payments.c.account_id))
            .where(placed, payments.c.status == _COMPLETED)
            .group_by(payments.c.account_id)
            .subquery()
        )
        refunded = (
            sa.select(payments.c.account_id, sa.func.sum(refunds.c.amount).label("total"))
            .select_from(
                refunds.join(payments, payments.c.id == refunds.c.payment_id).join(
                    accounts, accounts.c.id == payments.c.account_id
                )
            )
            .where(placed, refunds.c.status == _REFUNDED)
            .group_by(payments.c.account_id)
            .subquery()
        )
        async with self._snapshot() as connection:
            per_account = (
                sa.select(
                    accounts.c.original_creditor,
                    _utc_month(accounts.c.placed_at, connection.dialect.name).label("month"),
                    accounts.c.currency,
                    accounts.c.placed_balance,
                    (
                        sa.func.coalesce(paid.c.total, 0) - sa.func.coalesce(refunded.c.total, 0)
                    ).label("collected"),
                )
                .select_from(
                    accounts.outerjoin(paid, paid.c.account_id == accounts.c.id).outerjoin(
                        refunded, refunded.c.account_id == accounts.c.id
                    )
                )
                .where(placed)
                .subquery()
            )
            keys = (per_account.c.original_creditor, per_account.c.month, per_account.c.currency)
            statement = sa.select(
                *keys,
                sa.func.count(),
                sa.func.sum(per_account.c.placed_balance),
                sa.func.sum(per_account.c.collected),
            ).group_by(*keys)
            rows = await _rows(connection, statement)
        return [
            PlacementTally(
                original_creditor=r[0],
                month=r[1],
                currency=r[2],
                accounts=r[3],
                placed=int(r[4]),
                collected=int(r[5]),
            )
            for r in rows
        ]

    async def performance(self, agency_id: UUID, period: Period) -> PerformanceTallies:
        collector = accounts.c.assigned_collector_id
        in_agency = accounts.c.agency_id == agency_id
        collectors = sa.union(
            sa.select(users.c.id).where(
                users.c.agency_id == agency_id, users.c.role == Role.COLLECTOR.value
            ),
            sa.select(collector).where(in_agency, collector.is_not(None)),
        )
        assignments = (
            sa.select(collector, sa.func.count())
            .where(in_agency, collector.is_not(None))
            .group_by(collector)
        )
        recorded = sa.and_(
            activities.c.agency_id == agency_id,
            activities.c.actor_id.is_not(None),
            _within(activities.c.occurred_at, period),
        )
        by_type = (
            sa.select(activities.c.actor_id, activities.c.type, sa.func.count())
            .where(recorded)
            .group_by(activities.c.actor_id, activities.c.type)
        )
        taken = (
            sa.select(collector, payments.c.currency, *_count_sum(payments.c.amount))
            .select_from(payments.join(accounts, accounts.c.id == payments.c.account_id))
            .where(
                payments.c.agency_id == agency_id,
                payments.c.status == _COMPLETED,
                _within(payments.c.created_at, period),
                collector.is_not(None),
            )
            .group_by(collector, payments.c.currency)
        )
        async with self._snapshot() as connection:
            promises = (
                sa.select(
                    activities.c.actor_id,
                    accounts.c.currency,
                    *_count_sum(_promised(connection.dialect.name)),
                )
                .select_from(activities.join(accounts, accounts.c.id == activities.c.account_id))
                .where(
                    recorded,
                    activities.c.type == ActivityType.PROMISE_TO_PAY.value,
                    activities.c.promise.is_not(None),
                )
                .group_by(activities.c.actor_id, accounts.c.currency)
            )
            return PerformanceTallies(
                collectors=[r[0] for r in (await connection.execute(collectors)).all()],
                assignments=[
                    AssignmentTally(collector_id=r[0], accounts=r[1])
                    for r in await _rows(connection, assignments)
                ],
                activities=[
                    ActivityTally(actor_id=r[0], type=ActivityType(r[1]), count=r[2])
                    for r in await _rows(connection, by_type)
                ],
                promises=[
                    PromiseTally(actor_id=r[0], currency=r[1], count=r[2], amount=int(r[3]))
                    for r in await _rows(connection, promises)
                ],
                payments=[
                    CollectorTally(collector_id=r[0], currency=r[1], count=r[2], amount=int(r[3]))
                    for r in await _rows(connection, taken)
                ],
            )

    async def imports(self, agency_id: UUID, period: Period) -> list[ImportTally]:
        keys = (import_runs.c.file_source_id, import_runs.c.status)
        statement = (
            sa.select(
                *keys,
                sa.func.count(),
                *(
                    sa.func.sum(column)
                    for column in (
                        import_runs.c.rows_read,
                        import_runs.c.rows_created,
                        import_runs.c.rows_updated,
                        import_runs.c.rows_failed,
                    )
                ),
            )
            .where(import_runs.c.agency_id == agency_id, _within(import_runs.c.created_at, period))
            .group_by(*keys)
        )
        async with self._snapshot() as connection:
            rows = await _rows(connection, statement)
        return [
            ImportTally(
                file_source_id=r[0],
                status=ImportStatus(r[1]),
                runs=r[2],
                rows_read=int(r[3]),
                rows_created=int(r[4]),
                rows_updated=int(r[5]),
                rows_failed=int(r[6]),
            )
            for r in rows
        ]
