"""SqlUnitOfWork: a connection for each block, or one kept for the next block when asked."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_adapters.persistence.database import CommitUnconfirmed, is_transient
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.debtor import ContactPreferences, Debtor


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> AsyncEngine:
    return request.getfixturevalue(f"{request.param}_engine")


def agency(slug: str) -> Agency:
    return Agency(id=uuid.uuid4(), slug=slug, name=slug, created_at=datetime.now(UTC))


async def test_a_block_gives_its_connection_back_by_default(engine: AsyncEngine):
    # Whatever comes between two blocks (a request body, a password hash, a payment
    # gateway) must not hold a connection.
    checked_out = engine.pool.checkedout()
    uow = SqlUnitOfWork(engine)
    async with uow:
        assert engine.pool.checkedout() == checked_out + 1
    assert engine.pool.checkedout() == checked_out
    async with uow:
        await uow.agencies.add(agency("kept"))
        await uow.commit()
    assert engine.pool.checkedout() == checked_out


async def test_a_connection_kept_for_the_next_block_serves_that_block_only(
    engine: AsyncEngine,
):
    checked_out = engine.pool.checkedout()
    uow = SqlUnitOfWork(engine)
    uow.keep_for_next_block()
    async with uow:
        await uow.agencies.add(agency("dropped"))
        kept = uow.agencies
    assert engine.pool.checkedout() == checked_out + 1
    async with uow:  # on the kept connection, and still a transaction of its own
        assert uow.agencies is kept
        assert await uow.agencies.get_by_slug("dropped") is None
    assert engine.pool.checkedout() == checked_out
    async with uow:
        assert uow.agencies is not kept


async def test_a_connection_kept_for_a_block_that_never_came_is_released(engine: AsyncEngine):
    checked_out = engine.pool.checkedout()
    uow = SqlUnitOfWork(engine)
    uow.keep_for_next_block()
    async with uow:
        await uow.agencies.get_by_slug("alpha")
    assert engine.pool.checkedout() == checked_out + 1
    await uow.release()
    assert engine.pool.checkedout() == checked_out
    uow.keep_for_next_block()
    await uow.release()  # before any block: the next block keeps nothing
    async with uow:
        pass
    assert engine.pool.checkedout() == checked_out


async def test_on_sqlite_a_lock_makes_other_writers_wait_for_the_commit(sqlite_engine):
    # SQLite has no row locks: a lock takes its one write lock, so a second lock waits
    # and then reads what the first committed, instead of reading around it.
    alpha = agency("alpha")
    debtor = Debtor(
        id=uuid.uuid4(),
        agency_id=alpha.id,
        external_id="D-1",
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=None,
        phones=(),
        emails=(),
        address=None,
        contact_preferences=ContactPreferences(),
        created_at=alpha.created_at,
        updated_at=alpha.created_at,
    )
    async with SqlUnitOfWork(sqlite_engine) as uow:
        await uow.agencies.add(alpha)
        await uow.debtors.add(debtor)
        await uow.commit()

    async def lock_then_read() -> Debtor | None:
        async with SqlUnitOfWork(sqlite_engine) as uow:
            return await uow.debtors.lock(debtor.id)

    async with SqlUnitOfWork(sqlite_engine) as holder:
        locked = await holder.debtors.lock(debtor.id)
        second = asyncio.create_task(lock_then_read())
        await asyncio.sleep(0.3)
        assert not second.done()  # waiting for the holder's commit
        await holder.debtors.update(msgspec.structs.replace(locked, first_name="Grace"))
        await holder.commit()
    assert (await second).first_name == "Grace"


async def test_a_database_error_never_quotes_the_statements_values(engine: AsyncEngine):
    # An unexpected error is logged whole: a debtor's name or phone must not be in it.
    with pytest.raises(sa.exc.DBAPIError) as failed:
        async with engine.connect() as connection:
            await connection.execute(
                sa.text("INSERT INTO no_such_table (name) VALUES (:name)"),
                {"name": "Philomena Cartwright"},
            )
    assert "Philomena" not in str(failed.value)


@pytest.mark.postgres
async def test_a_commit_the_server_never_confirmed_is_not_a_failure_to_retry(
    postgres_engine: AsyncEngine,
):
    uow = SqlUnitOfWork(postgres_engine)
    with pytest.raises(CommitUnconfirmed) as caught:
        async with uow:
            await uow.agencies.add(agency("unconfirmed"))
            async with postgres_engine.connect() as other:  # the server ends our session
                await other.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            await asyncio.sleep(0.2)
            await uow.commit()
    # What the database raised was a connection's failure, which alone would read as one
    # to send again (a 503): its transaction may have been kept, for all the client knows.
    assert is_transient(caught.value.__cause__)
    assert not is_transient(caught.value)
