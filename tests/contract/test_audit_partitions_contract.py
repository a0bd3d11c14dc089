"""AuditPartitions: on PostgreSQL the audit log's monthly partitions; SQLite and the
in-memory store have none, so there is nothing to create or detach. Every adapter is
idempotent: a second call right after the first changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory.audit_partitions import InMemoryAuditPartitions
from debtflow_adapters.persistence import SqlAuditPartitions
from debtflow_core.ports.audit_partitions import AuditPartitions
from tests.support.audit_partitions import attached_partitions, restore_audit_partitions

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def partitions(request: pytest.FixtureRequest) -> AuditPartitions:
    if request.param == "memory":
        return InMemoryAuditPartitions()
    engine = request.getfixturevalue(
        "restoring_postgres_engine" if request.param == "postgres" else "sqlite_engine"
    )
    return SqlAuditPartitions(engine)


@pytest.fixture
async def restoring_postgres_engine(postgres_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    yield postgres_engine
    await restore_audit_partitions(postgres_engine)


async def test_a_second_creation_creates_nothing(partitions):
    await partitions.create_ahead(3)
    assert await partitions.create_ahead(3) == 0


async def test_nothing_ends_before_the_first_month(partitions):
    assert await partitions.detach_before(datetime(2000, 1, 1, tzinfo=UTC)) == ()


async def test_a_second_detach_detaches_nothing(partitions):
    await partitions.detach_before(FAR_FUTURE)
    assert await partitions.detach_before(FAR_FUTURE) == ()


@pytest.mark.postgres
async def test_detaching_keeps_the_default_partition_and_the_detached_tables(postgres_engine):
    partitions = SqlAuditPartitions(postgres_engine)
    months = [name for name in await attached_partitions(postgres_engine) if name[-3] == "m"]
    assert len(months) >= 4  # this month and three ahead, from the migration
    try:
        assert await partitions.detach_before(FAR_FUTURE) == tuple(months)
        assert await attached_partitions(postgres_engine) == ["audit_log_default"]
        async with postgres_engine.connect() as connection:
            for name in months:
                assert await connection.scalar(sa.text("SELECT to_regclass(:n)"), {"n": name})
    finally:
        await restore_audit_partitions(postgres_engine)
    assert await attached_partitions(postgres_engine) == ["audit_log_default", *months]
