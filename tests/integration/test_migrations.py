"""Alembic migrations: every revision goes up, down and up again, and head is the schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from debtflow_adapters.persistence import alembic_config, create_engine, downgrade, upgrade
from debtflow_adapters.persistence.tables import include_name, metadata

T = TypeVar("T")


@pytest.fixture
async def fresh_postgres_url(postgres_server) -> str:
    return await postgres_server.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A database of each dialect that no migration has touched."""
    return request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "fresh_postgres_url"
    )


async def inspect(url: str, look: Callable[[Connection], T]) -> T:
    """What ``look`` finds on a connection to the database at ``url``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


async def test_every_revision_goes_up_down_and_up_again(empty_database_url):
    script = ScriptDirectory.from_config(alembic_config(empty_database_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]
    assert revisions[0] == "0001"
    for revision in revisions:
        await upgrade(empty_database_url, revision)
        await downgrade(empty_database_url, "-1")
        await upgrade(empty_database_url, revision)


async def test_downgrading_to_base_leaves_only_alembics_own_table(empty_database_url):
    await upgrade(empty_database_url)
    await downgrade(empty_database_url, "base")

    def leftovers(connection: Connection) -> set[str]:
        names = set(sa.inspect(connection).get_table_names())
        if connection.dialect.name == "postgresql":
            functions = connection.scalars(
                sa.text("SELECT proname FROM pg_proc WHERE proname LIKE 'debtflow%'")
            )
            names |= set(functions)
        return names

    assert await inspect(empty_database_url, leftovers) == {"alembic_version"}


async def test_head_is_exactly_the_tables_module(empty_database_url):
    await upgrade(empty_database_url)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        return compare_metadata(context, metadata)

    assert await inspect(empty_database_url, differences) == []
