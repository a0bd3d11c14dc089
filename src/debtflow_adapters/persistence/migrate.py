"""Run DebtFlow's Alembic migrations from code: no alembic.ini, no event loop of their own.

The helpers are coroutines that hand Alembic a connection of the caller's loop, so they
work from the command line, at application start-up and inside async tests alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

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


async def _run(url: str, alembic_command: Callable[[Config], None]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(
                lambda sync_connection: alembic_command(
                    alembic_config(url, connection=sync_connection)
                )
            )
    finally:
        await engine.dispose()
