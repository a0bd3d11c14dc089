from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from debtflow_adapters.persistence import repositories as repos
from debtflow_adapters.persistence.payments import (
    SqlGatewayEventRepository,
    SqlIdempotencyRepository,
    SqlPaymentRepository,
)
from debtflow_core.ports.unit_of_work import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """A unit of work on one pooled connection and its transaction.

    Each ``async with`` takes a connection from ``engine``'s pool and begins a transaction;
    leaving the block rolls back whatever was not committed and returns the connection.
    Statements after a ``commit`` run in a new transaction, which the next ``commit`` keeps.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("this unit of work is already open")
        connection = await self._engine.connect()
        try:
            await connection.begin()
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self.agencies = repos.SqlAgencyRepository(connection)
        self.users = repos.SqlUserRepository(connection)
        self.debtors = repos.SqlDebtorRepository(connection)
        self.accounts = repos.SqlAccountRepository(connection)
        self.activities = repos.SqlActivityRepository(connection)
        self.audit_log = repos.SqlAuditLogRepository(connection)
        self.payment_processors = repos.SqlPaymentProcessorRepository(connection)
        self.sessions = repos.SqlSessionRepository(connection)
        self.payments = SqlPaymentRepository(connection)
        self.idempotency = SqlIdempotencyRepository(connection)
        self.gateway_events = SqlGatewayEventRepository(connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            await connection.rollback()
        finally:
            await connection.close()

    async def commit(self) -> None:
        if self._connection is None:
            raise RuntimeError("commit outside of an open unit of work")
        await self._connection.commit()
