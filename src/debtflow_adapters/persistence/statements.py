"""Statement helpers shared by the SQL repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from debtflow_core.errors import Conflict

T = TypeVar("T")

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@contextmanager
def integrity_error_as_conflict(detail: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError as error:
        raise Conflict(detail) from error


async def first(
    connection: AsyncConnection,
    statement: sa.Select[Any],
    entity: Callable[[Row[Any]], T],
    parameters: Mapping[str, Any] | None = None,
) -> T | None:
    row = (await connection.execute(statement, parameters)).first()
    return None if row is None else entity(row)


async def write_lock_on_sqlite(
    connection: AsyncConnection,
    table: sa.Table,
    id_: Any,
    *,
    rewrite: sa.Column[Any] | None = None,
) -> None:
    """On SQLite, hold the database against other writers until the transaction ends, before
    a ``SELECT … FOR UPDATE`` of the row ``id_`` reads it; elsewhere, nothing.

    SQLite has no row locks and SQLAlchemy drops ``FOR UPDATE`` for it, so the read alone
    would lock nothing. A write, even one that changes nothing, takes SQLite's one write
    lock (and begins the transaction, which the driver does only at a write): another
    writer waits for the commit (``busy_timeout``) and the read that follows sees the last.
    The write rewrites ``rewrite`` (``updated_at`` unless given), which must be a column no
    key or index holds: rewriting the primary key would make SQLite look for the rows whose
    foreign keys name it.
    """
    if connection.dialect.name == "sqlite":
        column = table.c.updated_at if rewrite is None else rewrite
        statement = sa.update(table).where(table.c.id == id_)
        await connection.execute(statement.values({column: column}))


def dialect_insert(connection: AsyncConnection, table: sa.Table) -> Any:
    """The INSERT of ``table`` in the connection's own dialect, which has ``ON CONFLICT``
    (``on_conflict_do_nothing``, ``on_conflict_do_update``)."""
    return _INSERT[connection.dialect.name](table)


async def insert_if_new(
    connection: AsyncConnection, table: sa.Table, values: Mapping[str, Any]
) -> bool:
    """Insert one row unless a unique key is taken; whether it was inserted.

    ON CONFLICT DO NOTHING reports a taken key as "no row inserted" rather than as an error,
    which on PostgreSQL would abort the transaction: after a duplicate the unit of work goes
    on, as the in-memory one does.
    """
    statement = (
        dialect_insert(connection, table)
        .values(values)
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True)
    )
    return (await connection.execute(statement)).rowcount == 1


async def insert(
    connection: AsyncConnection,
    table: sa.Table,
    values: Mapping[str, Any],
    *,
    duplicate: str,
    dangling: str | None = None,
) -> None:
    """Insert one row: Conflict(``duplicate``) if a unique key is taken, Conflict(``dangling``)
    if a foreign key points nowhere (a caller's bug, which does abort the transaction)."""
    with integrity_error_as_conflict(dangling or f"the database refused the {table.name} row"):
        inserted = await insert_if_new(connection, table, values)
    if not inserted:
        raise Conflict(duplicate)


def keyset_page(
    statement: sa.Select[Any],
    key: tuple[sa.ColumnElement[Any], ...],
    after: tuple[Any, ...] | None,
    limit: int,
    *,
    descending: bool = True,
) -> sa.Select[Any]:
    """Order by ``key`` and keep at most ``limit`` rows strictly past the ``after`` key."""
    if after is not None:
        position = sa.tuple_(*key)
        statement = statement.where(position < after if descending else position > after)
    order = [column.desc() for column in key] if descending else list(key)
    return statement.order_by(*order).limit(limit)
