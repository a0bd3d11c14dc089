"""The audit log's monthly partitions (PostgreSQL), written through the unit of work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.persistence import SqlUnitOfWork, create_audit_partitions
from debtflow_core.domain.audit import AuditEntry


def month_start(moment: datetime, months_ahead: int = 0) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months_ahead
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_of(moment: datetime) -> str:
    return f"audit_log_y{moment.year:04d}m{moment.month:02d}"


async def record(engine: AsyncEngine, occurred_at: datetime) -> uuid.UUID:
    """Add an audit entry through the unit of work; returns its id."""
    entry = AuditEntry(
        id=uuid.uuid4(),
        agency_id=uuid.uuid4(),
        actor_id=None,
        action="account.placed",
        entity_type="account",
        entity_id=uuid.uuid4(),
        before={},
        after={"status": "active"},
        occurred_at=occurred_at,
    )
    async with SqlUnitOfWork(engine) as uow:
        await uow.audit_log.add(entry)
        await uow.commit()
    return entry.id


async def partition_holding(engine: AsyncEngine, entry_id: uuid.UUID) -> str:
    async with engine.connect() as connection:
        return await connection.scalar(
            sa.text("SELECT tableoid::regclass::text FROM audit_log WHERE id = :id"),
            {"id": entry_id},
        )


@pytest.mark.postgres
async def test_an_entry_lands_in_the_partition_of_its_month(postgres_engine):
    now = datetime.now(UTC)
    entry_id = await record(postgres_engine, now)
    assert await partition_holding(postgres_engine, entry_id) == partition_of(now)


@pytest.mark.postgres
async def test_an_entry_of_a_month_without_partition_lands_in_the_default(postgres_engine):
    entry_id = await record(postgres_engine, datetime(2999, 1, 1, tzinfo=UTC))
    assert await partition_holding(postgres_engine, entry_id) == "audit_log_default"


@pytest.mark.postgres
async def test_partitions_are_created_once_and_adopt_the_entries_waiting_for_them(
    postgres_engine,
):
    now = datetime.now(UTC)
    ahead = [partition_of(month_start(now, months)) for months in (1, 2, 3)]
    async with postgres_engine.begin() as connection:
        for name in ahead:
            await connection.execute(sa.text(f"DROP TABLE {name}"))
    waiting = await record(postgres_engine, month_start(now, 2) + timedelta(days=3))
    assert await partition_holding(postgres_engine, waiting) == "audit_log_default"

    assert await create_audit_partitions(postgres_engine, months_ahead=3) == 3
    assert await partition_holding(postgres_engine, waiting) == ahead[1]
    assert await create_audit_partitions(postgres_engine, months_ahead=3) == 0


async def test_sqlite_has_no_partitions_to_create(sqlite_engine):
    assert await create_audit_partitions(sqlite_engine) == 0
