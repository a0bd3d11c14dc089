"""SqlUnitOfWork keeping its connection across blocks, as the composition root uses it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_core.domain.agency import Agency


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> AsyncEngine:
    return request.getfixturevalue(f"{request.param}_engine")


def agency(slug: str) -> Agency:
    return Agency(id=uuid.uuid4(), slug=slug, name=slug, created_at=datetime.now(UTC))


async def test_blocks_share_one_connection_and_still_roll_back(engine: AsyncEngine):
    checked_out = engine.pool.checkedout()
    uow = SqlUnitOfWork(engine, keep_connection=True)
    async with uow:
        await uow.agencies.add(agency("dropped"))
    assert engine.pool.checkedout() == checked_out + 1
    async with uow:
        assert await uow.agencies.get_by_slug("dropped") is None
    assert engine.pool.checkedout() == checked_out + 1
    await uow.close()
    assert engine.pool.checkedout() == checked_out


async def test_a_block_that_committed_gives_its_connection_back(engine: AsyncEngine):
    # What follows a commit may be a slow gateway call: no connection waits through it.
    checked_out = engine.pool.checkedout()
    uow = SqlUnitOfWork(engine, keep_connection=True)
    async with uow:
        await uow.agencies.add(agency("kept"))
        await uow.commit()
    assert engine.pool.checkedout() == checked_out
    async with uow:
        assert await uow.agencies.get_by_slug("kept") is not None
    await uow.close()
    assert engine.pool.checkedout() == checked_out


async def test_a_block_gives_its_connection_back_by_default(engine: AsyncEngine):
    checked_out = engine.pool.checkedout()
    uow = SqlUnitOfWork(engine)
    async with uow:
        assert engine.pool.checkedout() == checked_out + 1
    assert engine.pool.checkedout() == checked_out
