"""Databases for the tests, and ``uow_factory``: every adapter of the unit of work.

PostgreSQL comes from ``DEBTFLOW_TEST_POSTGRES_URL`` (a superuser that may create
databases), Redis from ``DEBTFLOW_TEST_REDIS_URL``. Without a server their tests are skipped,
except on CI (``CI=true``), where a missing service must fail the build rather than quietly
shrink it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from debtflow_adapters.memory import InMemoryStore, InMemoryUnitOfWork
from debtflow_adapters.persistence import SqlUnitOfWork, create_engine, normalize_url
from debtflow_adapters.persistence.migrate import upgrade
from debtflow_adapters.persistence.tables import metadata
from debtflow_core.ports.unit_of_work import UnitOfWork

UnitOfWorkFactory = Callable[[], UnitOfWork]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """A worker a core for ``-n auto``, at most four: each holds a PostgreSQL database, a
    pool of connections and its own SSH, S3 and Stripe servers."""
    return min(len(os.sched_getaffinity(0)), 4)


def service_missing(reason: str) -> None:
    """Skip the test, or fail it on CI, where every service must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class PostgresServer:
    """Creates throwaway databases on the test server and drops them all at the end."""

    def __init__(self, admin: AsyncEngine) -> None:
        self._admin = admin
        self._created: list[str] = []

    async def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"debtflow_test_{secrets.token_hex(6)}"
        async with self._admin.connect() as connection:
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        return self._admin.url.set(database=name).render_as_string(hide_password=False)

    async def drop_databases(self) -> None:
        async with self._admin.connect() as connection:
            for name in self._created:
                await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def postgres_server() -> AsyncIterator[PostgresServer]:
    url = os.environ.get("DEBTFLOW_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    admin = create_async_engine(
        make_url(normalize_url(url)), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with admin.connect():
            pass
    except OperationalError as error:
        await admin.dispose()
        service_missing(f"PostgreSQL is unreachable (DEBTFLOW_TEST_POSTGRES_URL): {error.orig}")
    server = PostgresServer(admin)
    yield server
    await server.drop_databases()
    await admin.dispose()


@pytest.fixture(scope="session")
async def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh empty database for this test session."""
    return await postgres_server.create_database()


@pytest.fixture
async def fresh_postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh empty database for this test."""
    return await postgres_server.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'debtflow.db'}"


@pytest.fixture(scope="session")
async def migrated_postgres_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database, migrated once to head."""
    await upgrade(postgres_url)
    engine = create_engine(postgres_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def postgres_engine(migrated_postgres_engine: AsyncEngine) -> AsyncEngine:
    """The session's migrated database, emptied for this test (faster than migrating)."""
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    try:
        async with migrated_postgres_engine.begin() as connection:
            # A transaction an earlier test left open would make TRUNCATE wait for ever.
            await connection.execute(sa.text("SET LOCAL lock_timeout = '20s'"))
            await connection.execute(sa.text(f"TRUNCATE {tables} CASCADE"))
    except DBAPIError as error:
        async with migrated_postgres_engine.connect() as connection:
            others = await connection.execute(sa.text(OTHER_SESSIONS))
            raise AssertionError(f"sessions left open: {others.all()}") from error
    return migrated_postgres_engine


OTHER_SESSIONS = """
    SELECT pid, state, query FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


@pytest.fixture(scope="session")
async def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; tests copy it rather than migrate again."""
    path = tmp_path_factory.mktemp("template") / "debtflow.db"
    await upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def sqlite_engine(
    migrated_sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """An engine on a new, migrated SQLite file of this test's own."""
    path = tmp_path / "debtflow.db"
    shutil.copyfile(migrated_sqlite_template, path)
    engine = create_engine(f"sqlite:///{path}")
    yield engine
    await engine.dispose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def uow_factory(request: pytest.FixtureRequest) -> UnitOfWorkFactory:
    """Fresh units of work over an empty store or a fully migrated, empty database.

    Every call returns a new unit of work; all of one test's share the same data.
    """
    if request.param == "memory":
        store = InMemoryStore()
        return lambda: InMemoryUnitOfWork(store)
    # Requested by name, so that the memory leg never waits for (or skips on) a database.
    engine: AsyncEngine = request.getfixturevalue(f"{request.param}_engine")
    return lambda: SqlUnitOfWork(engine)


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.Redis]:
    """A client on the test Redis, with every key under a prefix of this test's own."""
    client = redis.Redis.from_url(os.environ.get("DEBTFLOW_TEST_REDIS_URL", DEFAULT_REDIS_URL))
    try:
        await client.ping()
    except redis.RedisError as error:
        await client.aclose()
        service_missing(f"Redis is unreachable (DEBTFLOW_TEST_REDIS_URL): {error}")
    yield client
    await client.aclose()
