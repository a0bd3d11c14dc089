"""A payment's phases in one round trip each, straight through psycopg on PostgreSQL.

Through the repositories one by one, phase 1 of a payment took nine round trips and phase
3 seven, each statement costing about 1 ms of CPU in SQLAlchemy. Here the reads phase 1
needs are one query, and each phase's writes one prepared statement whose parts are
conditional on one another (data-modifying CTEs): one statement, atomic on its own, so
with no transaction open it runs as one (autocommit mode) and commits as it returns, in
one round trip a phase. JSON goes in as text that msgspec encoded.

SQLite and the in-memory store do the same step by step
(:mod:`~debtflow_adapters.payment_steps`); the contract suite holds both to one behaviour.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from psycopg import AsyncCursor
from sqlalchemy.dialects import postgresql

from debtflow_adapters.persistence.psycopg_reads import account_from_row, execute
from debtflow_adapters.persistence.tables import audit_log, payments
from debtflow_core.domain.account import Account
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.payment import Payment, PaymentStatus
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.ports.idempotency import IdempotencyRecord, IdempotencyState
from debtflow_core.ports.payments import Opened, Opening, Payable, Settling

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _typed(table: sa.Table, names: tuple[str, ...], prefix: str = "") -> str:
    """Placeholders for ``names``, cast to their columns' types: in an INSERT … SELECT
    PostgreSQL would take an untyped parameter (a None, a str) for text."""
    return ", ".join(
        f"%({prefix}{name})s::{table.c[name].type.compile(dialect=_DIALECT)}" for name in names
    )


_PAYMENT_FIELDS: tuple[str, ...] = Payment.__struct_fields__
_AUDIT_FIELDS: tuple[str, ...] = AuditEntry.__struct_fields__
_ACCOUNT_FIELDS = ", ".join(f"a.{name}" for name in Account.__struct_fields__)
_PROCESSOR_FIELDS = ", ".join(f"p.{name}" for name in PaymentProcessor.__struct_fields__)
_SPLIT = len(Account.__struct_fields__)

_PAYABLE = f"""
SELECT {_ACCOUNT_FIELDS}, g.allow_overpayment, {_PROCESSOR_FIELDS}
FROM accounts a
JOIN agencies g ON g.id = a.agency_id
LEFT JOIN payment_processors p ON p.id = %s
WHERE a.id = %s
"""

_INSERT_AUDIT = f"""
INSERT INTO audit_log ({", ".join(_AUDIT_FIELDS)})
SELECT {_typed(audit_log, _AUDIT_FIELDS, "audit_")}"""

# The account is locked first and the floor checked on it, so that the key is claimed only
# if the hold will be taken: a refused hold must leave no claim behind, and one statement
# cannot undo its own insert. A lost claim (ON CONFLICT: the key is taken) holds nothing.
# The statement answers the balance after the hold (NULL if none) and whether the hold was
# within the floor, which tells a lost claim from a refused hold.
_OPEN = f"""
WITH account AS (
    SELECT current_balance,
        %(floor)s::bigint IS NULL
            OR current_balance - %(amount)s::bigint >= %(floor)s::bigint AS within_floor
    FROM accounts WHERE id = %(account_id)s FOR UPDATE
), claim AS (
    INSERT INTO idempotency_keys (agency_id, key, fingerprint, state, created_at, expires_at)
    SELECT %(claim_agency_id)s, %(claim_key)s, %(claim_fingerprint)s, %(claim_state)s,
        %(claim_created_at)s, %(claim_expires_at)s
    FROM account
    WHERE within_floor
    ON CONFLICT DO NOTHING
    RETURNING 1
), hold AS (
    UPDATE accounts SET current_balance = current_balance - %(amount)s::bigint
    WHERE id = %(account_id)s AND EXISTS (SELECT FROM claim)
    RETURNING current_balance
), payment AS (
    INSERT INTO payments ({", ".join(_PAYMENT_FIELDS)})
    SELECT {_typed(payments, _PAYMENT_FIELDS)} FROM hold
), audit AS ({_INSERT_AUDIT} FROM hold
)
SELECT (SELECT current_balance FROM hold), (SELECT within_floor FROM account)
"""

_RECORD = """
SELECT agency_id, key, fingerprint, state, outcome, response, created_at, expires_at
FROM idempotency_keys WHERE agency_id = %s AND key = %s
"""

# The payment is saved only if it is as the caller saw it and its key is still there;
# everything else follows from that. Row locks are taken payment, key: the order of the
# settlement that locks the payment first (a webhook, the recovery task).
_SETTLE = f"""
WITH payment AS (
    UPDATE payments SET status = %(status)s, gateway_reference = %(gateway_reference)s,
        failure_code = %(failure_code)s, failure_message = %(failure_message)s,
        updated_at = %(updated_at)s
    WHERE id = %(id)s AND status = %(pending)s
        AND gateway_reference IS NOT DISTINCT FROM %(reference_before)s::varchar
        AND EXISTS (SELECT FROM idempotency_keys WHERE agency_id = %(agency_id)s AND key = %(key)s)
    RETURNING account_id
), audit AS ({_INSERT_AUDIT} FROM payment
)
UPDATE idempotency_keys SET state = %(done)s, outcome = %(outcome)s, response = %(response)s::jsonb
WHERE agency_id = %(agency_id)s AND key = %(key)s AND EXISTS (SELECT FROM payment)
RETURNING fingerprint, created_at, expires_at
"""

_PROCESSOR_KINDS = {kind.value: kind for kind in ProcessorKind}


def _processor(row: tuple[Any, ...]) -> PaymentProcessor | None:
    id_, agency_id, name, kind, active, created_at = row
    if id_ is None:
        return None
    return PaymentProcessor(
        id=id_,
        agency_id=agency_id,
        name=name,
        kind=_PROCESSOR_KINDS[kind],
        active=active,
        created_at=created_at,
    )


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _audit_parameters(entry: AuditEntry) -> dict[str, Any]:
    return {
        "audit_id": entry.id,
        "audit_agency_id": entry.agency_id,
        "audit_actor_id": entry.actor_id,
        "audit_action": entry.action,
        "audit_entity_type": entry.entity_type,
        "audit_entity_id": entry.entity_id,
        "audit_before": _json(entry.before),
        "audit_after": _json(entry.after),
        "audit_occurred_at": entry.occurred_at,
    }


class PsycopgPayments:
    """:meth:`PaymentRepository.payable`, ``open`` and ``settle`` on the psycopg
    connection under a unit of work's SQLAlchemy connection.

    Each runs inside the unit of work's transaction if one is open; if none is, as a
    transaction of its own (:func:`~debtflow_adapters.persistence.psycopg_reads.execute`),
    which a phase's single statement can be: committed when it returns. The caller then
    commits the unit of work through SQLAlchemy all the same, which sends nothing then.
    """

    def __init__(self, cursor: AsyncCursor[Any]) -> None:
        self._cursor = cursor

    async def payable(self, account_id: UUID, processor_id: UUID) -> Payable | None:
        cursor = await execute(self._cursor, _PAYABLE, (processor_id, account_id))
        row = await cursor.fetchone()
        if row is None:
            return None
        return Payable(
            account=account_from_row(row[:_SPLIT]),
            allow_overpayment=row[_SPLIT],
            processor=_processor(row[_SPLIT + 1 :]),
        )

    async def open(self, opening: Opening) -> Opened:
        payment, claim = opening.payment, opening.claim
        parameters: dict[str, Any] = {
            **msgspec.structs.asdict(payment),
            "status": payment.status.value,
            "account_id": payment.account_id,
            "amount": payment.amount,
            "floor": opening.floor,
            "claim_agency_id": claim.agency_id,
            "claim_key": claim.key,
            "claim_fingerprint": claim.fingerprint,
            "claim_state": claim.state.value,
            "claim_created_at": claim.created_at,
            "claim_expires_at": claim.expires_at,
            **_audit_parameters(opening.audit),
        }
        opened = await (await execute(self._cursor, _OPEN, parameters)).fetchone()
        assert opened is not None  # the statement answers one row
        balance, within_floor = opened
        if balance is not None:
            return Opened(balance=balance)
        # The key is taken, or the hold was refused before claiming: either way the key's
        # record, if there is one, is the answer (read anew, to see a concurrent claim
        # that committed while this statement waited for it).
        cursor = await execute(self._cursor, _RECORD, (claim.agency_id, claim.key))
        row = await cursor.fetchone()
        if row is None:
            # A hold within the floor lost its claim, to a request that freed the key
            # before it could be read: not a refused hold.
            return Opened(key_taken=bool(within_floor))
        agency_id, key, fingerprint, state, outcome, response, created_at, expires_at = row
        return Opened(
            existing=IdempotencyRecord(
                agency_id=agency_id,
                key=key,
                fingerprint=fingerprint,
                state=IdempotencyState(state),
                outcome=outcome,
                response=response,
                created_at=created_at,
                expires_at=expires_at,
            )
        )

    async def settle(self, settling: Settling) -> IdempotencyRecord | None:
        before, after = settling.before, settling.after
        parameters = {
            "id": after.id,
            "status": after.status.value,
            "gateway_reference": after.gateway_reference,
            "failure_code": after.failure_code,
            "failure_message": after.failure_message,
            "updated_at": after.updated_at,
            "pending": PaymentStatus.PENDING.value,
            "reference_before": before.gateway_reference,
            "agency_id": after.agency_id,
            "key": after.idempotency_key,
            "done": IdempotencyState.DONE.value,
            "outcome": settling.outcome,
            "response": _json(settling.response),
            **_audit_parameters(settling.audit),
        }
        row = await (await execute(self._cursor, _SETTLE, parameters)).fetchone()
        if row is None:
            return None
        fingerprint, created_at, expires_at = row
        return IdempotencyRecord(
            agency_id=after.agency_id,
            key=after.idempotency_key,
            fingerprint=fingerprint,
            state=IdempotencyState.DONE,
            outcome=settling.outcome,
            response=settling.response,
            created_at=created_at,
            expires_at=expires_at,
        )
