from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from debtflow_adapters.persistence import repositories as repos
from debtflow_adapters.persistence.database import CommitUnconfirmed, refused_commit
from debtflow_adapters.persistence.exports import SqlExportRepository
from debtflow_adapters.persistence.file_sources import SqlFileSourceRepository
from debtflow_adapters.persistence.imports import SqlImportRunRepository
from debtflow_adapters.persistence.payments import (
    SqlGatewayEventRepository,
    SqlIdempotencyRepository,
    SqlPaymentRepository,
)
from debtflow_adapters.persistence.psycopg_payments import PsycopgPayments
from debtflow_adapters.persistence.psycopg_reads import PsycopgReads, reused_cursor
from debtflow_core.ports.unit_of_work import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """A unit of work on one pooled connection and its transaction.

    Each ``async with`` is a transaction on a connection from ``engine``'s pool; leaving
    the block rolls back whatever was not committed and gives the connection back.
    Statements after a ``commit`` run in a new transaction, which the next ``commit`` keeps.

    :meth:`keep_for_next_block` makes the next block to end keep its connection for the
    block after it. The API asks for it from the token check to the operation it lets in,
    when nothing more comes from the client between them (no body, or a small one read
    before the check): one connection taken from the pool per request, not two. Nothing is kept by default, because whatever comes between two
    blocks would hold the connection with it: a request body that a client sends as slowly
    as it likes, a password hash, a payment gateway's answer.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._open = False
        self._keep = False

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError("this unit of work is already open")
        if self._connection is None:
            connection = await self._engine.connect()
            try:
                await self._repositories(connection)
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
        # No begin(): the connection begins its transaction with the first statement
        # through SQLAlchemy, so a block that runs none costs no round trips to end.
        self._open = True
        return self

    async def _repositories(self, connection: AsyncConnection) -> None:
        reads = fast_payments = None
        if connection.dialect.name == "postgresql":
            raw = await connection.get_raw_connection()
            cursor = reused_cursor(raw.driver_connection, raw.info)
            reads, fast_payments = PsycopgReads(cursor), PsycopgPayments(cursor)
        self.agencies = repos.SqlAgencyRepository(connection)
        self.users = repos.SqlUserRepository(connection)
        self.debtors = repos.SqlDebtorRepository(connection)
        self.accounts = repos.SqlAccountRepository(connection, reads)
        self.activities = repos.SqlActivityRepository(connection)
        self.audit_log = repos.SqlAuditLogRepository(connection)
        self.payment_processors = repos.SqlPaymentProcessorRepository(connection)
        self.sessions = repos.SqlSessionRepository(connection, reads)
        self.idempotency = SqlIdempotencyRepository(connection)
        self.payments = SqlPaymentRepository(connection, self, fast_payments)
        self.gateway_events = SqlGatewayEventRepository(connection)
        self.file_sources = SqlFileSourceRepository(connection)
        self.import_runs = SqlImportRunRepository(connection)
        self.exports = SqlExportRepository(connection)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._open:
            return
        self._open = False
        keep, self._keep = self._keep, False
        assert self._connection is not None
        try:
            if self._connection.in_transaction():
                await self._connection.rollback()
        except BaseException:
            # A connection that failed to roll back is not worth keeping.
            await self._release()
            raise
        if not keep:
            await self._release()

    async def commit(self) -> None:
        if not self._open:
            raise RuntimeError("commit outside of an open unit of work")
        assert self._connection is not None
        try:
            await self._connection.commit()
        except DBAPIError as error:
            if isinstance(error.orig, sqlite3.Error) or refused_commit(error):
                raise
            raise CommitUnconfirmed("the database did not confirm the commit") from error

    def keep_for_next_block(self) -> None:
        self._keep = True

    async def release(self) -> None:
        """Return a kept connection to the pool (the block that used it has rolled back),
        and keep none for a block yet to end."""
        if self._open:
            raise RuntimeError("release the unit of work's connection after leaving it")
        self._keep = False
        await self._release()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
