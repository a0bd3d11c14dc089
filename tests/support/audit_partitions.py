"""The audit log's partitions on the session's shared PostgreSQL database, for tests that
detach some: what is attached now, and putting the usual ones back after."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.persistence import create_audit_partitions

ATTACHED = sa.text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'audit_log'::regclass ORDER BY c.relname"
)
_DETACHED = sa.text(
    "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'audit_log\\_y%'"
    " AND NOT relispartition"
)


async def attached_partitions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.scalars(ATTACHED)).all())


async def restore_audit_partitions(engine: AsyncEngine) -> None:
    """Drop the detached partitions' tables and create this month's and the next three
    again, as the migration left them, for the tests that follow on the same database."""
    async with engine.begin() as connection:
        for name in (await connection.scalars(_DETACHED)).all():
            await connection.execute(sa.text(f'DROP TABLE "{name}"'))
    await create_audit_partitions(engine, months_ahead=3)
