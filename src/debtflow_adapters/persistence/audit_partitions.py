"""Upkeep of the audit log's monthly partitions on PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_core.ports.audit_partitions import AuditPartitions

# The lock debtflow_create_audit_partitions takes: detaching waits for a creation under
# way, and the other way round.
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('debtflow_create_audit_partitions'))")
_PARTITIONS = sa.text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'audit_log'::regclass"
)
# The names debtflow_create_audit_partitions gives; the default partition has none of them.
_MONTHLY = re.compile(r"audit_log_y(?P<year>\d{4})m(?P<month>\d{2})")


async def create_audit_partitions(engine: AsyncEngine, months_ahead: int = 3) -> int:
    """Create the audit log partitions of this month and the next ``months_ahead`` months
    that do not exist yet, and return how many were created.

    Run it well before a month starts: entries of a month without a partition land in the
    default partition, which every query then has to scan. SQLite has no partitions: 0.
    """
    if engine.dialect.name != "postgresql":
        return 0
    async with engine.begin() as connection:
        created = await connection.scalar(
            sa.select(sa.func.debtflow_create_audit_partitions(months_ahead))
        )
    return int(created)


class SqlAuditPartitions(AuditPartitions):
    """The partitions of PostgreSQL's ``audit_log``; on SQLite, which has none, nothing."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_ahead(self, months_ahead: int) -> int:
        return await create_audit_partitions(self._engine, months_ahead)

    async def detach_before(self, cutoff: datetime) -> tuple[str, ...]:
        if self._engine.dialect.name != "postgresql":
            return ()
        async with self._engine.begin() as connection:
            await connection.execute(_LOCK)
            # A detach locks the whole log: rather than queue every write behind a long
            # reader (a report, pg_dump), give up and let tomorrow's run try again.
            await connection.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            names = sorted(
                name
                for name in (await connection.scalars(_PARTITIONS)).all()
                if (month := _MONTHLY.fullmatch(name)) and _month_end(month) <= cutoff
            )
            quote = self._engine.dialect.identifier_preparer.quote
            for name in names:
                # Not CONCURRENTLY: PostgreSQL refuses it on a table with a default partition.
                await connection.execute(
                    sa.text(f"ALTER TABLE audit_log DETACH PARTITION {quote(name)}")
                )
        return tuple(names)


def _month_end(month: re.Match[str]) -> datetime:
    index = int(month["year"]) * 12 + int(month["month"])  # the next month, 0-based
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
