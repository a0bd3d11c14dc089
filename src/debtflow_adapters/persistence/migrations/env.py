"""Alembic environment of DebtFlow's schema.

:mod:`debtflow_adapters.persistence.migrate` runs it on the connection it passes in
``config.attributes["connection"]``, so that migrations run inside the caller's event loop.
Given only ``sqlalchemy.url`` (as when a developer autogenerates a revision from a script),
it opens an engine of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from debtflow_adapters.persistence.database import create_engine
from debtflow_adapters.persistence.tables import UTCDateTime, include_name, metadata


def _render_item(type_: str, obj: Any, _autogen_context: AutogenContext) -> str | bool:
    """Write our column types as plain SQLAlchemy: a revision must not import the app."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise RuntimeError(
        "DebtFlow's migrations need a database connection: they branch on its dialect"
    )

_connection = context.config.attributes.get("connection")
if _connection is None:
    asyncio.run(_run_on_own_engine(context.config.get_main_option("sqlalchemy.url")))
else:
    _run_migrations(_connection)
