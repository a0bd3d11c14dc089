"""A database that cannot serve a request now (a lock that timed out, a deadlock, the
server out of reach) is a 503 problem the client may retry, its transaction rolled back;
any other database error stays a bare 500."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.persistence.database import is_transient, refused_commit
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, TestAdapters, make_settings


@pytest.mark.postgres
async def test_a_lock_that_timed_out_is_a_503_to_retry_and_changes_nothing(
    postgres_engine: AsyncEngine,
):
    url = postgres_engine.url.update_query_dict({"options": "-c lock_timeout=200ms"})
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(make_settings(url.render_as_string(hide_password=False)), TestAdapters(clock))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        account = await alpha.account("A-1")
        path = f"/v1/accounts/{account.id}/status"
        async with postgres_engine.connect() as holder:  # another transaction holds the row
            await holder.execute(
                sa.text("SELECT 1 FROM accounts WHERE id = :id FOR UPDATE"), {"id": account.id}
            )
            refused = await client.put(
                path, headers=alpha.headers["admin"], json={"status": "closed"}
            )
            await holder.rollback()

        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["type"] == "urn:debtflow:problem:unavailable"
        assert refused.json()["detail"] == "the database is busy or unreachable; try again shortly"
        kept = await client.get(f"/v1/accounts/{account.id}", headers=alpha.headers["admin"])
        assert kept.json()["status"] == "active"
        again = await client.put(path, headers=alpha.headers["admin"], json={"status": "closed"})
        assert again.status_code == 200, again.text


def test_errors_that_may_clear_are_told_from_those_that_would_fail_again(tmp_path):
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        sqlite3.connect(path, timeout=0).execute("SELECT * FROM t")
    except sqlite3.OperationalError as busy:
        assert is_transient(sa.exc.OperationalError("SELECT", {}, busy))
    else:
        pytest.fail("the file was not busy")
    finally:
        holder.close()
    try:
        sqlite3.connect(":memory:").execute("SELECT * FROM missing")
    except sqlite3.OperationalError as missing:
        assert not is_transient(sa.exc.OperationalError("SELECT", {}, missing))

    busy_snapshot = sqlite3.OperationalError("database is locked")
    busy_snapshot.sqlite_errorcode = 517  # SQLITE_BUSY_SNAPSHOT: an extended code of BUSY
    assert is_transient(sa.exc.OperationalError("UPDATE", {}, busy_snapshot))

    for error in (
        psycopg.OperationalError("connection failed: Connection refused"),
        psycopg.errors.DeadlockDetected(),
        psycopg.errors.SerializationFailure(),
        psycopg.errors.LockNotAvailable(),
        psycopg.errors.TooManyConnections(),
        psycopg.errors.AdminShutdown(),
        psycopg.errors.CannotConnectNow(),
    ):
        assert is_transient(error), error
        assert is_transient(sa.exc.OperationalError("SELECT 1", {}, error)), error
    assert is_transient(sa.exc.TimeoutError("QueuePool limit reached"))
    for error in (
        psycopg.errors.UniqueViolation(),
        psycopg.errors.UndefinedTable(),
        psycopg.errors.QueryCanceled(),  # a statement timeout: asked again, slow again
        psycopg.errors.ProtocolViolation(),
        psycopg.errors.ProgramLimitExceeded(),
        psycopg.errors.ObjectNotInPrerequisiteState(),
    ):
        assert not is_transient(error), error
        assert not is_transient(sa.exc.IntegrityError("INSERT", {}, error)), error


def test_a_commit_is_refused_by_the_server_or_unconfirmed():
    def commit_failed(error: Exception) -> sa.exc.DBAPIError:
        return sa.exc.OperationalError("COMMIT", {}, error)

    assert refused_commit(commit_failed(psycopg.errors.SerializationFailure()))
    assert refused_commit(commit_failed(psycopg.errors.ForeignKeyViolation()))
    assert not refused_commit(commit_failed(psycopg.OperationalError("consuming input failed")))
    assert not refused_commit(commit_failed(psycopg.errors.AdminShutdown()))
