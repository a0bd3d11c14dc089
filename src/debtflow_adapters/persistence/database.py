"""Database URLs and engines: the two databases DebtFlow supports, each with its async driver."""

from __future__ import annotations

import select
import sqlite3
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from debtflow_adapters import text_search

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_EXPECTED = "expected sqlite:///PATH or postgresql://USER@HOST/DATABASE"

# Writers queue on SQLite's single write lock; wait this long for it before failing.
_SQLITE_BUSY_TIMEOUT_MS = 15_000
# Per process. A connection is held only while a unit of work is open, but each concurrent
# request may hold one: 20 kept open covers a server process under a few dozen concurrent
# requests without opening and closing overflow connections (a new PostgreSQL backend costs
# milliseconds) as the load swings; 10 more absorb bursts. Two server processes stay at
# 60 connections, under PostgreSQL's default limit of 100.
_POSTGRES_POOL_SIZE = 20
_POSTGRES_MAX_OVERFLOW = 10


def normalize_url(url: str) -> str:
    """Return ``url`` naming the async driver DebtFlow uses for its database.

    Users write the URLs they know (``sqlite:///debtflow.db``, ``postgres://…``); the
    engine needs ``sqlite+aiosqlite`` or ``postgresql+psycopg``. Raise ``ValueError`` for
    anything else. The message never repeats the URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(f"the database URL is malformed; {_EXPECTED}") from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"unsupported database {parsed.drivername!r}; {_EXPECTED}")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (any form :func:`normalize_url` accepts).

    Its errors never quote a statement's parameters (``hide_parameters``): they hold
    debtors' names, phones and emails, and an unexpected error is logged whole.
    """
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, pool_pre_ping=True, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    engine = create_async_engine(
        parsed,
        hide_parameters=True,
        pool_size=_POSTGRES_POOL_SIZE,
        max_overflow=_POSTGRES_MAX_OVERFLOW,
        # The connection used last is handed out first: the few that a light load needs
        # stay the ones with their statements prepared, rather than all twenty in turn.
        pool_use_lifo=True,
        # Every timestamp is read as UTC, also by the queries that bypass SQLAlchemy's types.
        connect_args={"options": " ".join([*_url_options(parsed), "-c TimeZone=UTC"])},
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed_by_server)
    return engine


def _url_options(url: URL) -> list[str]:
    """The ``options`` the URL gives libpq, kept beside ours (connect_args would replace them)."""
    given = url.query.get("options", ())
    return [given] if isinstance(given, str) else list(given)


def _replace_if_closed_by_server(
    _dbapi_connection: Any, _record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """Make the pool replace a pooled PostgreSQL connection the server has closed, or one
    left in autocommit mode, where a statement that runs as a transaction of its own
    failed to leave it (later statements would each be a transaction of their own).

    This stands in for ``pool_pre_ping``, which costs a round trip per checkout. A server
    that ends a session (restart, ``pg_terminate_backend``, idle timeout) sends an error
    and closes the socket; an idle connection's socket has nothing to read otherwise. So a
    readable socket means the connection is gone (or, harmlessly, that the server said
    something unasked): raising DisconnectionError makes the pool reconnect it in place,
    and the request never sees the dead connection.
    """
    connection = proxy.driver_connection
    if connection.closed:
        raise DisconnectionError("the connection is closed")
    if connection.autocommit:
        raise DisconnectionError("the connection was left in autocommit mode")
    readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    if readable:
        raise DisconnectionError("the server closed the connection")


def _configure_sqlite(dbapi_connection: Any, _connection_record: Any) -> None:
    """SQLite settings are per connection: foreign keys are off unless asked for, a busy
    database fails at once unless told to wait, and WAL lets readers run beside the writer
    (the app and the worker share the file)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()
    # The built-in lower() folds ASCII only; text search must fold "É" as PostgreSQL does.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value: object) -> object:
    return text_search.lower(value) if isinstance(value, str) else value


DATABASE_ERRORS: tuple[type[Exception], ...] = (sa_exc.SQLAlchemyError, psycopg.Error)
"""What the stores raise for a database's failure: SQLAlchemy's errors, and psycopg's own
from the statements run on the driver directly (SQLite's reach callers wrapped by
SQLAlchemy)."""


class CommitUnconfirmed(Exception):
    """The connection failed while committing: the transaction may or may not have been
    kept, so the request must not be answered as one to simply send again."""


def is_transient(error: BaseException) -> bool:
    """Whether a database error may clear if the same request is made again shortly, its
    transaction having been rolled back: the server unreachable, restarting or out of
    connections, the pool out of connections, a transaction lost to a deadlock or a
    serialization conflict, a lock that timed out, or SQLite's file busy. Errors of the
    statement itself (a constraint, bad SQL, a statement timeout) are not: asked again,
    they fail again."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the connection failed before or without the server's word.
        return error.sqlstate is None or error.sqlstate in _TRANSIENT_SQLSTATES
    if isinstance(error, sqlite3.OperationalError):
        return error.sqlite_errorcode & 0xFF in _SQLITE_BUSY  # the primary of extended codes
    return False


_TRANSIENT_SQLSTATES = frozenset(
    {
        *("08000", "08001", "08003", "08004", "08006"),  # connection exceptions
        *("40001", "40P01"),  # serialization failure, deadlock detected
        "53300",  # too many connections
        "55P03",  # lock not available (lock_timeout)
        *("57P01", "57P02", "57P03"),  # shutting down, starting up
    }
)

_SQLITE_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def refused_commit(error: sa_exc.DBAPIError) -> bool:
    """Whether a failed COMMIT was the server's refusal (a serialization failure, a
    deferred constraint), which rolled the transaction back, rather than a connection that
    failed with its outcome unknown."""
    state = getattr(error.orig, "sqlstate", None)
    return state is not None and state.startswith(("40", "23"))
