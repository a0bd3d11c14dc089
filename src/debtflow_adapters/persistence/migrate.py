"""Run DebtFlow's Alembic migrations from code: no alembic.ini, no event loop of their own.

The helpers are coroutines that hand Alembic a connection of the caller's loop, so they
work from the command line, at application start-up and inside async tests alike.
:class:`SchemaRevisions` tells whether a database's schema is ready for this code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from debtflow_adapters.persistence.database import create_engine, normalize_url

_SCRIPT_LOCATION = Path(__file__).parent / "migrations"


def alembic_config(url: str, *, connection: Connection | None = None) -> Config:
    """An Alembic configuration for DebtFlow's migrations on the database at ``url``.

    With ``connection`` the migrations run on it; without, they open their own engine
    (use that only where no event loop is running, e.g. to autogenerate a revision).
    """
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    # ConfigParser interpolation would read a "%" of an escaped password as a reference.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``."""
    await _run(url, lambda config: command.upgrade(config, revision))


async def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` empties it)."""
    await _run(url, lambda config: command.downgrade(config, revision))


# Held by the transaction a migration runs in (the whole of it, PostgreSQL's DDL being
# transactional), so released at its commit or rollback whatever happens: ASCII "debtflow".
_MIGRATION_LOCK = 0x64656274666C6F77


async def _run(url: str, alembic_command: Callable[[Config], None]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Migrations started together (a replica each, a retried job) run one
                # after the other: each later one then finds the schema at its target.
                # Unlocked, all but one failed on the tables the first was creating.
                await connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            await connection.run_sync(
                lambda sync_connection: alembic_command(
                    alembic_config(url, connection=sync_connection)
                )
            )
    finally:
        await engine.dispose()


class SchemaRevisions:
    """The revisions of this code's migrations, read once from their scripts (no database),
    against which a database's schema is judged."""

    def __init__(self) -> None:
        script = ScriptDirectory(str(_SCRIPT_LOCATION))
        self._head = script.get_current_head()
        self._older = frozenset(r.revision for r in script.walk_revisions()) - {self._head}

    async def lag(self, connection: AsyncConnection) -> str | None:
        """Why the schema on ``connection`` is not ready for this code (``"schema not
        migrated"``, ``"schema behind"``), or ``None``: at this code's head, or at a revision
        it does not know, which a newer release migrated to (a rolling upgrade: that
        release's migrations keep the schema working for the one before)."""
        current = await connection.run_sync(_current_revisions)
        if not current:
            return "schema not migrated"
        if current & self._older:
            return "schema behind"
        return None


# Alembic's own table, under its default name (env.py keeps it). Read here rather than
# through a MigrationContext, which logs two lines each time it is made: at every /ready.
_VERSION = sa.table("alembic_version", sa.column("version_num"))


def _current_revisions(connection: Connection) -> frozenset[str]:
    if not sa.inspect(connection).has_table(_VERSION.name):
        return frozenset()
    return frozenset(connection.scalars(sa.select(_VERSION.c.version_num)))
