"""Upkeep of the audit log's monthly partitions on PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


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
