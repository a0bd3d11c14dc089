"""Payments, refunds, idempotency records and gateway events in SQLAlchemy Core."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from debtflow_adapters.payment_steps import PaymentSteps
from debtflow_adapters.persistence.psycopg_payments import PsycopgPayments
from debtflow_adapters.persistence.statements import (
    first,
    insert_if_new,
    keyset_page,
    write_lock_on_sqlite,
)
from debtflow_adapters.persistence.tables import (
    UNAPPLIED_EVENT,
    accounts,
    gateway_events,
    idempotency_keys,
    payments,
    refunds,
)
from debtflow_core.domain.gateway_event import GatewayEvent, GatewayEventType
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund, RefundStatus
from debtflow_core.ports.gateway_events import GatewayEventRepository
from debtflow_core.ports.idempotency import (
    IdempotencyRecord,
    IdempotencyRepository,
    IdempotencyState,
)
from debtflow_core.ports.payments import (
    Opened,
    Opening,
    Payable,
    PaymentPosition,
    PaymentQuery,
    PaymentRepository,
    RefundPosition,
    Settling,
)
from debtflow_core.ports.unit_of_work import UnitOfWork


def _payment(row: Row[Any]) -> Payment:
    return Payment(
        id=row.id,
        agency_id=row.agency_id,
        account_id=row.account_id,
        processor_id=row.processor_id,
        amount=row.amount,
        currency=row.currency,
        payment_method=row.payment_method,
        status=PaymentStatus(row.status),
        idempotency_key=row.idempotency_key,
        gateway_reference=row.gateway_reference,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        refunded_amount=row.refunded_amount,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _refund(row: Row[Any]) -> Refund:
    return Refund(
        id=row.id,
        agency_id=row.agency_id,
        payment_id=row.payment_id,
        amount=row.amount,
        status=RefundStatus(row.status),
        gateway_reference=row.gateway_reference,
        idempotency_key=row.idempotency_key,
        created_by=row.created_by,
        created_at=row.created_at,
        completed_at=row.completed_at,
        failed_at=row.failed_at,
    )


def _record(row: Row[Any]) -> IdempotencyRecord:
    return IdempotencyRecord(
        agency_id=row.agency_id,
        key=row.key,
        fingerprint=row.fingerprint,
        state=IdempotencyState(row.state),
        outcome=row.outcome,
        response=row.response,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class SqlPaymentRepository(PaymentRepository):
    """Payments; a payment's phases go through psycopg on PostgreSQL (``fast``), and step
    by step through the unit of work's ``others`` on SQLite."""

    def __init__(
        self, connection: AsyncConnection, others: UnitOfWork, fast: PsycopgPayments | None
    ) -> None:
        self._connection = connection
        self._fast = fast
        self._commit = others.commit
        self._steps = PaymentSteps(
            payments=self,
            swap=self._swap,
            commit=self._commit,
            accounts=others.accounts,
            agencies=others.agencies,
            processors=others.payment_processors,
            idempotency=others.idempotency,
            audit_log=others.audit_log,
        )

    async def payable(self, account_id: UUID, processor_id: UUID) -> Payable | None:
        if self._fast is not None:
            return await self._fast.payable(account_id, processor_id)
        return await self._steps.payable(account_id, processor_id)

    async def open(self, opening: Opening) -> Opened:
        if self._fast is None:
            return await self._steps.open(opening)
        opened = await self._fast.open(opening)
        if opened.balance is not None:
            await self._commit()  # sends nothing if the statement was a transaction alone
        return opened

    async def settle(self, settling: Settling) -> IdempotencyRecord | None:
        if self._fast is None:
            return await self._steps.settle(settling)
        record = await self._fast.settle(settling)
        if record is not None:
            await self._commit()
        return record

    async def _swap(self, before: Payment, after: Payment) -> bool:
        statement = (
            sa.update(payments)
            .where(
                payments.c.id == before.id,
                payments.c.status == PaymentStatus.PENDING,
                payments.c.gateway_reference.is_not_distinct_from(before.gateway_reference),
            )
            .values(
                status=after.status,
                gateway_reference=after.gateway_reference,
                failure_code=after.failure_code,
                failure_message=after.failure_message,
                updated_at=after.updated_at,
            )
            .execution_options(preserve_rowcount=True)
        )
        return (await self._connection.execute(statement)).rowcount == 1

    async def add(self, payment: Payment) -> None:
        await self._connection.execute(sa.insert(payments).values(msgspec.structs.asdict(payment)))

    async def get(self, id_: UUID) -> Payment | None:
        return await first(
            self._connection, sa.select(payments).where(payments.c.id == id_), _payment
        )

    async def get_by_reference(self, reference: str) -> Payment | None:
        statement = (
            sa.select(payments)
            .where(payments.c.gateway_reference == reference)
            .order_by(payments.c.created_at, payments.c.id)
            .limit(1)
        )
        return await first(self._connection, statement, _payment)

    async def lock(self, id_: UUID) -> Payment | None:
        await write_lock_on_sqlite(self._connection, payments, id_)
        return await first(
            self._connection,
            sa.select(payments).where(payments.c.id == id_).with_for_update(),
            _payment,
        )

    async def update(self, payment: Payment) -> None:
        await self._connection.execute(
            sa.update(payments)
            .where(payments.c.id == payment.id)
            .values(
                status=payment.status,
                gateway_reference=payment.gateway_reference,
                failure_code=payment.failure_code,
                failure_message=payment.failure_message,
                refunded_amount=payment.refunded_amount,
                updated_at=payment.updated_at,
            )
        )

    async def list(self, query: PaymentQuery) -> list[Payment]:
        statement = sa.select(payments).where(payments.c.agency_id == query.agency_id)
        if query.account_id is not None:
            statement = statement.where(payments.c.account_id == query.account_id)
        if query.status is not None:
            statement = statement.where(payments.c.status == query.status)
        if query.collector_id is not None:
            assigned = sa.select(accounts.c.id).where(
                accounts.c.agency_id == query.agency_id,
                accounts.c.assigned_collector_id == query.collector_id,
            )
            statement = statement.where(payments.c.account_id.in_(assigned))
        after = (query.after.created_at, query.after.id) if query.after else None
        statement = keyset_page(
            statement, (payments.c.created_at, payments.c.id), after, query.limit
        )
        rows = await self._connection.execute(statement)
        return [_payment(row) for row in rows]

    async def pending_since(
        self,
        before: datetime,
        limit: int,
        *,
        after: datetime,
        following: PaymentPosition | None = None,
    ) -> list[Payment]:
        statement = sa.select(payments).where(
            payments.c.status == PaymentStatus.PENDING,
            payments.c.created_at < before,
            sa.or_(payments.c.created_at > after, payments.c.gateway_reference.is_not(None)),
        )
        start = (following.created_at, following.id) if following is not None else None
        statement = keyset_page(
            statement, (payments.c.created_at, payments.c.id), start, limit, descending=False
        )
        return [_payment(row) for row in await self._connection.execute(statement)]

    async def reserve_refund(self, id_: UUID, amount: int) -> bool:
        refunded = payments.c.refunded_amount + amount
        statement = (
            sa.update(payments)
            .where(
                payments.c.id == id_,
                payments.c.status == PaymentStatus.COMPLETED,
                refunded >= 0,
                refunded <= payments.c.amount,
            )
            .values(refunded_amount=refunded)
            .execution_options(preserve_rowcount=True)
        )
        return (await self._connection.execute(statement)).rowcount == 1

    async def add_refund(self, refund: Refund) -> None:
        await self._connection.execute(sa.insert(refunds).values(msgspec.structs.asdict(refund)))

    async def refund(self, id_: UUID) -> Refund | None:
        return await first(self._connection, sa.select(refunds).where(refunds.c.id == id_), _refund)

    async def complete_refund(self, id_: UUID, reference: str, at: datetime) -> None:
        await self._connection.execute(
            sa.update(refunds)
            .where(refunds.c.id == id_)
            .values(status=RefundStatus.COMPLETED, gateway_reference=reference, completed_at=at)
        )

    async def fail_refund(self, id_: UUID, reference: str | None, at: datetime) -> None:
        await self._connection.execute(
            sa.update(refunds)
            .where(refunds.c.id == id_)
            .values(status=RefundStatus.FAILED, gateway_reference=reference, failed_at=at)
        )

    async def remove_refund(self, id_: UUID) -> None:
        await self._connection.execute(
            sa.delete(refunds).where(refunds.c.id == id_, refunds.c.status == RefundStatus.PENDING)
        )

    async def refunds(self, payment_id: UUID) -> list[Refund]:
        statement = (
            sa.select(refunds)
            .where(refunds.c.payment_id == payment_id)
            .order_by(refunds.c.created_at, refunds.c.id)
        )
        return [_refund(row) for row in await self._connection.execute(statement)]

    async def pending_refunds(
        self,
        before: datetime,
        limit: int,
        *,
        after: datetime,
        following: RefundPosition | None = None,
    ) -> list[Refund]:
        statement = sa.select(refunds).where(
            refunds.c.status == RefundStatus.PENDING,
            refunds.c.created_at > after,
            refunds.c.created_at < before,
        )
        start = (following.created_at, following.id) if following is not None else None
        statement = keyset_page(
            statement, (refunds.c.created_at, refunds.c.id), start, limit, descending=False
        )
        return [_refund(row) for row in await self._connection.execute(statement)]


class SqlIdempotencyRepository(IdempotencyRepository):
    """Idempotency records; the primary key (agency_id, key) makes a claim unique.

    A concurrent claim of the same key waits on the first one's uncommitted row, then
    finds it: ON CONFLICT DO NOTHING inserts nothing, and the row is read back.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    def _where(self, agency_id: UUID, key: str) -> sa.ColumnElement[bool]:
        return sa.and_(idempotency_keys.c.agency_id == agency_id, idempotency_keys.c.key == key)

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        if await insert_if_new(self._connection, idempotency_keys, msgspec.structs.asdict(record)):
            return None
        return await first(
            self._connection,
            sa.select(idempotency_keys).where(self._where(record.agency_id, record.key)),
            _record,
        )

    async def finish(
        self, agency_id: UUID, key: str, outcome: str, response: dict[str, Any]
    ) -> IdempotencyRecord | None:
        statement = (
            sa.update(idempotency_keys)
            .where(self._where(agency_id, key))
            .values(state=IdempotencyState.DONE, outcome=outcome, response=response)
            .returning(*idempotency_keys.c)
        )
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _record(row)

    async def release(self, agency_id: UUID, key: str) -> None:
        await self._connection.execute(
            sa.delete(idempotency_keys).where(self._where(agency_id, key))
        )

    async def purge_expired(self, now: datetime) -> int:
        statement = (
            sa.delete(idempotency_keys)
            .where(idempotency_keys.c.expires_at <= now)
            .execution_options(preserve_rowcount=True)
        )
        return (await self._connection.execute(statement)).rowcount


def _event(row: Row[Any]) -> GatewayEvent:
    return GatewayEvent(
        id=row.id,
        type=GatewayEventType(row.type),
        payment_id=row.payment_id,
        reference=row.reference,
        decline_code=row.decline_code,
        message=row.message,
        amount_refunded=row.amount_refunded,
        refund_key=row.refund_key,
        payment_reference=row.payment_reference,
        refund_amount=row.refund_amount,
        created_at=row.created_at,
        received_at=row.received_at,
        processed_at=row.processed_at,
        outcome=row.outcome,
    )


class SqlGatewayEventRepository(GatewayEventRepository):
    """Gateway events keyed by the gateway's event id: a redelivery inserts nothing."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def record(self, event: GatewayEvent) -> bool:
        return await insert_if_new(self._connection, gateway_events, msgspec.structs.asdict(event))

    async def get(self, id_: str) -> GatewayEvent | None:
        return await first(
            self._connection, sa.select(gateway_events).where(gateway_events.c.id == id_), _event
        )

    async def unapplied(
        self, *, received_before: datetime, received_after: datetime, limit: int
    ) -> list[str]:
        c = gateway_events.c
        waiting = (
            sa.select(c.id)
            .where(UNAPPLIED_EVENT, c.received_at > received_after)
            .where(c.received_at < received_before)
            .order_by(c.received_at, c.id)
            .limit(limit)
        )
        return list(await self._connection.scalars(waiting))

    async def mark_processed(self, id_: str, outcome: str, at: datetime) -> str | None:
        marked = await self._connection.execute(
            sa.update(gateway_events)
            .where(gateway_events.c.id == id_, gateway_events.c.processed_at.is_(None))
            .values(processed_at=at, outcome=outcome)
        )
        if marked.rowcount == 1:
            return outcome
        stored = await self.get(id_)
        return None if stored is None else stored.outcome
