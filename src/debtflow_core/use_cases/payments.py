"""Taking card payments: idempotent, charged once, never half-applied.

A payment runs in three phases. Phase 1, one transaction: the idempotency key is claimed,
the amount is held off the account's balance (an atomic, floored decrement, so concurrent
payments can never take more than the balance) and the payment is written ``pending``
with its audit entry. Phase 2: the gateway charges, with an idempotency key derived from
the agency's. Phase 3, one transaction: the payment becomes ``completed`` (the account
``paid_in_full`` once nothing is owed) or ``failed`` (the hold given back), and the
response is stored under the key for replays.

A crash between phases leaves the payment ``pending``: :class:`SettlePendingPayments`
asks the gateway again with the same key, which answers without charging twice.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.account import COLLECTING, Account, AccountStatus
from debtflow_core.domain.card_numbers import looks_like_card_number
from debtflow_core.domain.money import validate_amount, validate_currency
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund, RefundStatus
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.errors import (
    Conflict,
    DomainError,
    GatewayUnavailable,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from debtflow_core.ids import new_id
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import (
    can_reach_account,
    collector_scope,
    may_replay_unread,
    reachable_account,
    require_admin,
    require_writer,
)
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.idempotency import (
    IdempotencyCache,
    IdempotencyRecord,
    IdempotencyState,
)
from debtflow_core.ports.payment_gateway import (
    KEYS_REMEMBERED,
    ChargeLookup,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
)
from debtflow_core.ports.payments import (
    Opening,
    PaymentPosition,
    PaymentQuery,
    RefundPosition,
    Settling,
)
from debtflow_core.ports.telemetry import Telemetry
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.accounts import move_account
from debtflow_core.validation import require_text

IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class NewPayment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account_id: UUID
    amount: int
    """Minor units, more than zero and at most the balance (unless the agency allows
    overpayment)."""
    currency: str
    processor_id: UUID
    payment_method: str
    """The gateway's reference to the card (a Stripe ``pm_…`` id), never the card itself."""


class PaymentOutcome(enum.StrEnum):
    COMPLETED = "completed"
    DECLINED = "declined"
    PENDING = "pending"
    """The gateway has not confirmed yet; a webhook or the recovery task will."""


class PaymentResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: PaymentOutcome
    payment: Payment
    replayed: bool = False
    """This is the stored answer to an earlier request with the same idempotency key."""


ASKED_AGAIN_FOR = KEYS_REMEMBERED - timedelta(hours=1)
"""How long after its request the recovery tasks ask the gateway again about a payment or a
refund it never answered, with an hour to spare: later the gateway may have forgotten the
key, and asking again would charge or refund a second time. Older ones are left to the
gateway's webhook or to an operator (docs/operations.md). A payment the gateway accepted is
looked up by its reference, whatever its age."""


def validate_idempotency_key(key: str) -> str:
    """``key``, if it is one: it is stored, and sent to the gateway, so it may not hold
    what looks like a card number (refused without being repeated)."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"an idempotency key is 1 to {MAX_KEY_LENGTH} printable characters",
            field="Idempotency-Key",
        )
    if looks_like_card_number(key):
        raise ValidationFailed(
            "an idempotency key may not hold what looks like a card number",
            field="Idempotency-Key",
        )
    return key


_FINAL_OUTCOMES = frozenset({"completed", "declined", "failed"})
"""The answers under a key that nothing changes any more, the only ones the cache holds: a
payment completed or declined, a refund that failed. A pending payment or refund is
settled later, and a completed refund may still fail (``refund.failed``), each by whichever
process learns of it first, whose cache may be another one, or whose put may be lost or
land after a later answer's: those are answered from the database, which is never stale."""


async def _cached(
    cache: IdempotencyCache, clock: Clock, agency_id: UUID, key: str
) -> IdempotencyRecord | None:
    """The cached answer under ``key``, unless it is past its time (the key may have been
    purged and claimed anew since, which the database knows and a cache may not) or could
    still change: an earlier release cached pending answers and completed refunds."""
    record = await cache.get(agency_id, key)
    if record is None or record.outcome not in _FINAL_OUTCOMES or record.expires_at <= clock.now():
        return None
    return record


async def _answer_under_key(
    uow: UnitOfWork,
    agency_id: UUID,
    key: str,
    claimed_at: datetime,
    now: datetime,
    outcome: str,
    answer: msgspec.Struct,
) -> IdempotencyRecord | None:
    """Store ``answer`` for the replays of the request that claimed ``key`` at
    ``claimed_at``, while the key is certainly still its own: past its 24 hours it may have
    been purged and claimed by another request (an answer that comes days late: a lookup,
    a webhook), whose record must not be written over. The record, to cache once
    committed, if its outcome is final (:data:`_FINAL_OUTCOMES`)."""
    if now >= claimed_at + IDEMPOTENCY_TTL:
        return None
    record = await uow.idempotency.finish(agency_id, key, outcome, msgspec.to_builtins(answer))
    return record if record is not None and outcome in _FINAL_OUTCOMES else None


def _fingerprint(operation: str, command: msgspec.Struct) -> str:
    return hashlib.sha256(operation.encode() + b"\0" + msgspec.json.encode(command)).hexdigest()


def _gateway_key(agency_id: UUID, key: str, row_id: UUID) -> str:
    """The key a payment or refund is sent to the gateway under: ours, after the agency's
    id (keys are unique per agency; the gateway account may serve several agencies), and
    before the row's id. The row's id keeps it the same for every call about that row and
    never used again: a key we free (a refund the gateway refused) or forget (after a day)
    may come back for another request, which the gateway would answer with the first
    one's stored result."""
    return f"{agency_id}:{key}:{row_id}"


def row_of_gateway_key(gateway_key: str) -> UUID | None:
    """The row id that :func:`_gateway_key` put last, or ``None`` for another key."""
    try:
        return UUID(gateway_key.rpartition(":")[2])
    except ValueError:
        return None


def made_under(refund: Refund, gateway_key: str) -> bool:
    """Whether ``refund`` was sent to the gateway under ``gateway_key``."""
    own = refund.idempotency_key
    return own is not None and _gateway_key(refund.agency_id, own, refund.id) == gateway_key


def stored_response(
    record: IdempotencyRecord, fingerprint: str, telemetry: Telemetry, operation: str
) -> dict[str, Any]:
    """The stored answer for a repeated key: ValidationFailed for another request under the
    same key, Conflict while the first is still running. Each is told to ``telemetry``."""
    if record.fingerprint != fingerprint:
        telemetry.idempotency_conflict(operation, "different_request")
        raise ValidationFailed(
            "this idempotency key was used for a different request", field="Idempotency-Key"
        )
    if record.state is IdempotencyState.IN_FLIGHT or record.response is None:
        raise _in_flight(telemetry, operation)
    telemetry.idempotent_replay(operation)
    return record.response


def _in_flight(telemetry: Telemetry, operation: str) -> Conflict:
    telemetry.idempotency_conflict(operation, "in_flight")
    return Conflict("a request with this idempotency key is still being processed")


def replay(record: IdempotencyRecord, fingerprint: str, telemetry: Telemetry) -> PaymentResult:
    payment = msgspec.convert(stored_response(record, fingerprint, telemetry, "payment"), Payment)
    return PaymentResult(outcome=PaymentOutcome(record.outcome), payment=payment, replayed=True)


def _made_by(record: IdempotencyRecord) -> UUID | None:
    """Who made the payment a finished key answered."""
    made_by = (record.response or {}).get("created_by")
    return None if made_by is None else UUID(made_by)


def _reached(telemetry: Telemetry, processor: str, payment: Payment) -> None:
    telemetry.payment_reached(processor, payment.status, payment.amount, payment.currency)


def _claim(agency_id: UUID, key: str, fingerprint: str, now: datetime) -> IdempotencyRecord:
    return IdempotencyRecord(
        agency_id=agency_id,
        key=key,
        fingerprint=fingerprint,
        state=IdempotencyState.IN_FLIGHT,
        outcome=None,
        response=None,
        created_at=now,
        expires_at=now + IDEMPOTENCY_TTL,
    )


async def claim_key(
    uow: UnitOfWork, agency_id: UUID, key: str, fingerprint: str, now: datetime
) -> IdempotencyRecord | None:
    """Claim ``key`` for this request (``None``), or return the record that holds it."""
    return await uow.idempotency.claim(_claim(agency_id, key, fingerprint, now))


class _Open(msgspec.Struct, frozen=True, kw_only=True):
    """A payment phase 1 wrote, with what phase 3 needs to know of it."""

    payment: Payment
    processor: ProcessorKind
    balance: int
    """The account's balance after the hold."""


class Settlement:
    """Phase 3, shared by the payment itself, the recovery task and webhooks."""

    def __init__(
        self, uow: UnitOfWork, clock: Clock, cache: IdempotencyCache, telemetry: Telemetry
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._cache = cache
        self._telemetry = telemetry

    async def settle(
        self,
        actor: Actor,
        payment_id: UUID,
        result: ChargeResult,
        processor: ProcessorKind | None = None,
    ) -> PaymentResult:
        """Apply the gateway's answer to a pending payment, once: a payment that is no
        longer pending is left as it is, whatever the answer says. ``processor`` is the
        payment's processor kind, when the caller knows it (else it is looked up)."""
        settled, _ = await self.settle_once(actor, payment_id, result, processor)
        return settled

    async def settle_once(
        self,
        actor: Actor,
        payment_id: UUID,
        result: ChargeResult,
        processor: ProcessorKind | None = None,
    ) -> tuple[PaymentResult, bool]:
        """:meth:`settle`, and whether this call was the one that found it pending. The
        payment is locked while it is read and changed, so of concurrent settlements
        (the payment's own phase 3, a webhook, the recovery task) exactly one does."""
        now = self._clock.now()
        async with self._uow as uow:
            before = await uow.payments.lock(payment_id)
            if before is None:
                raise NotFound.of("payment", payment_id)
            after = before
            if before.status is PaymentStatus.PENDING:
                after = await self._apply(actor, before, result, now)
            moved = after.status is not before.status
            if moved and processor is None:
                found = await uow.payment_processors.get(after.processor_id)
                processor = None if found is None else found.kind
            outcome = _outcome_of(after)
            record = await self._finish(after, outcome, now)
            await uow.commit()
        if moved:
            _reached(self._telemetry, processor or "unknown", after)
        if record is not None:
            await self._cache.put(record)
        return PaymentResult(outcome=outcome, payment=after), before.status is PaymentStatus.PENDING

    async def _apply(
        self, actor: Actor, payment: Payment, result: ChargeResult, now: datetime
    ) -> Payment:
        uow = self._uow
        if result.outcome is ChargeOutcome.PROCESSING:
            if payment.gateway_reference == result.reference:
                return payment
            after = msgspec.structs.replace(payment, gateway_reference=result.reference)
            await uow.payments.update(after)
            return after
        if result.outcome is ChargeOutcome.SUCCEEDED:
            after = payment.complete(result.reference, at=now)
            action = "payment.completed"
        else:
            after = payment.fail(
                result.decline_code or "declined",
                result.message or "the card was declined",
                reference=result.reference,
                at=now,
            )
            action = "payment.failed"
        await uow.payments.update(after)
        await uow.audit_log.add(
            audit_entry(actor, action, entity_id=payment.id, before=payment, after=after, at=now)
        )
        if after.status is PaymentStatus.COMPLETED:
            await _mark_paid_in_full(uow, actor, payment.account_id, now)
        else:
            await _give_back(uow, actor, payment.account_id, payment.amount, now)
        return after

    async def _finish(
        self, payment: Payment, outcome: PaymentOutcome, now: datetime
    ) -> IdempotencyRecord | None:
        return await _answer_under_key(
            self._uow,
            payment.agency_id,
            payment.idempotency_key,
            payment.created_at,
            now,
            outcome,
            payment,
        )


async def _mark_paid_in_full(
    uow: UnitOfWork, actor: Actor, account_id: UUID, now: datetime
) -> None:
    """Mark the account paid in full if nothing is owed on it now (a balance below zero is
    an overpayment, a credit owed to the debtor) and it is still being collected. Locked
    after the payment, the order every settlement takes: an account closed or disputed
    meanwhile is judged as it is now, and its change is not written over."""
    account = await uow.accounts.lock(account_id)
    if account is None or account.current_balance > 0 or account.status not in COLLECTING:
        return
    await move_account(uow, actor, account, AccountStatus.PAID_IN_FULL, now)


def _outcome_of(payment: Payment) -> PaymentOutcome:
    return {
        PaymentStatus.COMPLETED: PaymentOutcome.COMPLETED,
        PaymentStatus.FAILED: PaymentOutcome.DECLINED,
        PaymentStatus.PENDING: PaymentOutcome.PENDING,
    }[payment.status]


def _refusal(
    actor: Actor, account: Account, currency: str, processor: PaymentProcessor | None
) -> DomainError | None:
    """Why the account cannot take this payment, if it cannot."""
    if account.status not in COLLECTING:
        return Conflict(f"a {account.status} account takes no payments")
    if currency != account.currency:
        return ValidationFailed(f"the account is in {account.currency}", field="currency")
    if processor is None or processor.agency_id != actor.agency_id or not processor.active:
        return ValidationFailed(
            "no active payment processor with this id in the agency", field="processor_id"
        )
    return None


class MakePayment(Settlement):
    """Charge a debtor's card on an account, exactly once per idempotency key.

    Collectors on their assigned accounts and agency admins. The amount is more than zero
    and, unless the agency allows overpayment, at most the balance; the currency is the
    account's; the processor is one of the agency's active processors; the payment method
    is the gateway's reference to a card, and anything that looks like a card number, there
    or in the idempotency key, is refused without being stored. Only active or disputed
    accounts take payments.

    The same key with the same request replays the first answer; with another request it
    is a ValidationFailed; while the first request runs, a Conflict. A gateway that gives
    no answer leaves the payment pending (the outcome follows); an open circuit breaker
    cancels it and raises GatewayUnavailable, freeing the key, unless the recovery task
    reached the gateway about it meanwhile, whose answer stands.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        cache: IdempotencyCache,
        gateway: PaymentGateway,
        telemetry: Telemetry,
    ) -> None:
        super().__init__(uow, clock, cache, telemetry)
        self._gateway = gateway

    async def execute(
        self, actor: Actor, idempotency_key: str, command: NewPayment
    ) -> PaymentResult:
        key = validate_idempotency_key(idempotency_key)
        if looks_like_card_number(command.payment_method):
            raise ValidationFailed(
                "send the gateway's payment-method reference, never a card number",
                field="payment_method",
            )
        fingerprint = _fingerprint("payment", command)
        cached = await _cached(self._cache, self._clock, actor.agency_id, key)
        if cached is not None and may_replay_unread(actor, _made_by(cached)):
            return replay(cached, fingerprint, self._telemetry)
        opened = await self._open(actor, key, fingerprint, command)
        if isinstance(opened, PaymentResult):
            return opened
        payment = opened.payment
        try:
            result = await self._gateway.charge(
                ChargeRequest(
                    processor=opened.processor,
                    idempotency_key=_gateway_key(actor.agency_id, key, payment.id),
                    amount=payment.amount,
                    currency=payment.currency,
                    payment_method=payment.payment_method,
                    description=f"DebtFlow payment {payment.id}",
                    payment_id=payment.id,
                )
            )
        except GatewayUnavailable as error:
            if error.request_sent:
                return await self._leave_pending(opened)
            if (settled := await self._cancel(actor, opened)) is not None:
                return settled
            raise
        settled = await self._settle_as_opened(actor, opened, result)
        if settled is not None:
            return settled
        settled = await self.settle(actor, payment.id, result, opened.processor)
        if settled.payment.status is PaymentStatus.PENDING:
            _reached(self._telemetry, opened.processor, settled.payment)
        return settled

    async def _settle_as_opened(
        self, actor: Actor, opened: _Open, result: ChargeResult
    ) -> PaymentResult | None:
        """Phase 3 in one step for a completed payment, if nothing changed it since phase 1
        wrote it (no webhook, no recovery came first) and the account cannot have reached
        zero: its balance only falls by holds, so it is zero or below only if this
        payment's hold or a later one made it so, and that payment's own phase 3 marks it
        paid in full.
        A declined payment gives its hold back, which may reopen an account another
        payment has since paid in full. ``None`` when these do not hold: :meth:`settle`
        does it the long way."""
        payment = opened.payment
        if result.outcome is not ChargeOutcome.SUCCEEDED or opened.balance <= 0:
            return None
        now = self._clock.now()
        after = payment.complete(result.reference, at=now)
        outcome = _outcome_of(after)
        async with self._uow as uow:
            record = await uow.payments.settle(
                Settling(
                    before=payment,
                    after=after,
                    audit=audit_entry(
                        actor,
                        "payment.completed",
                        entity_id=payment.id,
                        before=payment,
                        after=after,
                        at=now,
                    ),
                    outcome=outcome,
                    response=msgspec.to_builtins(after),
                )
            )
        if record is None:
            return None
        _reached(self._telemetry, opened.processor, after)
        await self._cache.put(record)
        return PaymentResult(outcome=outcome, payment=after)

    async def _open(
        self, actor: Actor, key: str, fingerprint: str, command: NewPayment
    ) -> _Open | PaymentResult:
        """Phase 1: claim the key, hold the amount, write the pending payment."""
        amount = validate_amount(command.amount, field="amount", allow_zero=False)
        currency = validate_currency(command.currency)
        method = require_text(command.payment_method, field="payment_method", max_length=255)
        now = self._clock.now()
        async with self._uow as uow:
            payable = await uow.payments.payable(command.account_id, command.processor_id)
            try:
                account = reachable_account(
                    actor, None if payable is None else payable.account, command.account_id
                )
                require_writer(actor)
            except (NotFound, PermissionDenied):
                # Whom a cached answer is replayed to unread has it replayed from here
                # too (a collector whose account was reassigned since, say): a cache miss
                # changes no outcome. The claim made to find out is rolled back.
                existing = await claim_key(uow, actor.agency_id, key, fingerprint, now)
                if existing is not None and may_replay_unread(actor, _made_by(existing)):
                    return replay(existing, fingerprint, self._telemetry)
                raise
            assert payable is not None  # reachable_account raised otherwise
            processor = payable.processor
            if (refusal := _refusal(actor, account, currency, processor)) is not None:
                # A repeat of a payment that was taken replays it, though what it did (paid
                # the account in full, say) would refuse it now. The claim made to find out
                # is rolled back with the refusal.
                existing = await claim_key(uow, actor.agency_id, key, fingerprint, now)
                if existing is not None:
                    return replay(existing, fingerprint, self._telemetry)
                raise refusal
            assert processor is not None  # _refusal refused otherwise
            payment = Payment(
                id=new_id(),
                agency_id=actor.agency_id,
                account_id=account.id,
                processor_id=command.processor_id,
                amount=amount,
                currency=currency,
                payment_method=method,
                status=PaymentStatus.PENDING,
                idempotency_key=key,
                gateway_reference=None,
                failure_code=None,
                failure_message=None,
                refunded_amount=0,
                created_by=actor.user_id,
                created_at=now,
                updated_at=now,
            )
            claim = _claim(actor.agency_id, key, fingerprint, now)
            opened = await uow.payments.open(
                Opening(
                    claim=claim,
                    payment=payment,
                    audit=audit_entry(
                        actor,
                        "payment.created",
                        entity_id=payment.id,
                        before=None,
                        after=payment,
                        at=now,
                    ),
                    floor=None if payable.allow_overpayment else 0,
                )
            )
            if opened.existing is not None:
                return replay(opened.existing, fingerprint, self._telemetry)
            if opened.key_taken:  # by a request running until a moment ago
                raise _in_flight(self._telemetry, "payment")
            if opened.balance is None:
                raise ValidationFailed(
                    f"the amount is more than the balance of {account.current_balance}",
                    field="amount",
                )
        return _Open(payment=payment, processor=processor.kind, balance=opened.balance)

    async def _leave_pending(self, opened: _Open) -> PaymentResult:
        """The gateway may or may not have charged: keep the hold and say "pending", unless
        a webhook or the recovery task settled the payment meanwhile (the gateway answered
        them, not us), whose answer stands. Read under the payment's lock, so neither is
        written over. Not cached: the cache holds final answers, and this one changes when
        the payment settles."""
        async with self._uow as uow:
            current = await uow.payments.lock(opened.payment.id)
            assert current is not None  # payments are never deleted
            if current.status is PaymentStatus.PENDING:
                await self._finish(current, PaymentOutcome.PENDING, self._clock.now())
                await uow.commit()
                _reached(self._telemetry, opened.processor, current)
        return PaymentResult(outcome=_outcome_of(current), payment=current)

    async def _cancel(self, actor: Actor, opened: _Open) -> PaymentResult | None:
        """Nothing reached the gateway from this request: fail the payment, give the hold
        back, free the key, and return ``None``. Unless the recovery task's call reached it
        meanwhile (this request hung past the task's wait), leaving the payment settled, or
        pending with the gateway's reference: that stands, and is the answer. Read under
        the payment's lock, as :meth:`_leave_pending` does, so nothing is written over."""
        now = self._clock.now()
        async with self._uow as uow:
            payment = await uow.payments.lock(opened.payment.id)
            assert payment is not None  # payments are never deleted
            if payment.status is not PaymentStatus.PENDING or payment.gateway_reference is not None:
                return PaymentResult(outcome=_outcome_of(payment), payment=payment)
            failed = payment.fail(
                "gateway_unavailable",
                "the payment gateway could not be reached",
                reference=None,
                at=now,
            )
            await uow.payments.update(failed)
            await _give_back(uow, actor, payment.account_id, payment.amount, now)
            await uow.idempotency.release(payment.agency_id, payment.idempotency_key)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "payment.failed",
                    entity_id=payment.id,
                    before=payment,
                    after=failed,
                    at=now,
                )
            )
            await uow.commit()
        _reached(self._telemetry, opened.processor, failed)
        return None


async def _reachable_payment(uow: UnitOfWork, actor: Actor, payment_id: UUID) -> Payment:
    """The payment if the actor may see it: in their agency and, for a collector, on an
    account assigned to them. Otherwise the very NotFound a missing payment gets, so that
    nobody learns which payment ids exist beyond their reach."""
    payment = await uow.payments.get(payment_id)
    if payment is not None and payment.agency_id == actor.agency_id:
        account = await uow.accounts.get(payment.account_id)
        if account is not None and can_reach_account(actor, account):
            return payment
    raise NotFound.of("payment", payment_id)


class GetPayment:
    """One payment. Collectors see the payments of their assigned accounts."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor, payment_id: UUID) -> Payment:
        async with self._uow as uow:
            return await _reachable_payment(uow, actor, payment_id)


class ListPayments:
    """Payments of the agency (or of one account), newest first, one page at a time.

    Collectors see only the payments of their assigned accounts.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self,
        actor: Actor,
        *,
        account_id: UUID | None = None,
        status: PaymentStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Payment]:
        limit = validate_limit(limit)
        query = PaymentQuery(
            agency_id=actor.agency_id,
            account_id=account_id,
            status=status,
            collector_id=collector_scope(actor),
            after=decode_cursor(cursor, PaymentPosition) if cursor else None,
            limit=limit + 1,
        )
        async with self._uow as uow:
            if account_id is not None:
                reachable_account(actor, await uow.accounts.get(account_id), account_id)
            rows = await uow.payments.list(query)
        return paginate(rows, limit, lambda p: PaymentPosition(p.created_at, p.id))


class SettlePendingPayments(Settlement):
    """Settle payments left pending longer than ``older_than``, and apply the gateway's
    answer. A payment the gateway never answered (a crash between phases, a timeout) is
    asked about again under its key, which answers without charging twice. A payment the
    gateway accepted but left processing is looked up by its reference: asked again under
    its key, the gateway would repeat its first answer, processing, however the charge
    ended, and a lost webhook would leave the payment pending for good. A scheduled
    platform task; it goes through every such payment, ``batch`` at a time, so that those
    still without an end do not hold back the others.

    Returns how many payments it settled (completed or failed).
    """

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        cache: IdempotencyCache,
        gateway: PaymentGateway,
        telemetry: Telemetry,
    ) -> None:
        super().__init__(uow, clock, cache, telemetry)
        self._gateway = gateway

    async def execute(self, older_than: timedelta = timedelta(minutes=5), batch: int = 100) -> int:
        now = self._clock.now()
        settled = 0
        following = None
        while True:
            async with self._uow as uow:
                stuck = await uow.payments.pending_since(
                    now - older_than, batch, after=now - ASKED_AGAIN_FOR, following=following
                )
                kinds = {
                    processor.id: processor.kind
                    for agency_id in {payment.agency_id for payment in stuck}
                    for processor in await uow.payment_processors.list(agency_id)
                }
            for payment in stuck:
                unanswered = payment.gateway_reference is None
                if unanswered and payment.created_at <= self._clock.now() - ASKED_AGAIN_FOR:
                    continue  # its key's time ran out while the run looked up older ones
                processor = kinds[payment.processor_id]
                try:
                    result = await self._ask(payment, processor)
                except GatewayUnavailable:
                    # Only this payment, perhaps (a gateway may repeat a stored error under
                    # its key); an open breaker fails the rest fast without calling it.
                    continue
                except NotImplementedError:  # a gateway that cannot look charges up
                    continue
                outcome = await self.settle(
                    Actor.system(payment.agency_id), payment.id, result, processor
                )
                settled += outcome.outcome is not PaymentOutcome.PENDING
            if len(stuck) < batch:
                return settled
            following = PaymentPosition(stuck[-1].created_at, stuck[-1].id)

    async def _ask(self, payment: Payment, processor: ProcessorKind) -> ChargeResult:
        if payment.gateway_reference is not None:
            # Only an answer of the gateway's leaves a pending payment its reference.
            return await self._gateway.look_up(
                ChargeLookup(processor=processor, reference=payment.gateway_reference)
            )
        return await self._gateway.charge(
            ChargeRequest(
                processor=processor,
                idempotency_key=_gateway_key(
                    payment.agency_id, payment.idempotency_key, payment.id
                ),
                amount=payment.amount,
                currency=payment.currency,
                payment_method=payment.payment_method,
                description=f"DebtFlow payment {payment.id}",
                payment_id=payment.id,
            )
        )


class PurgeIdempotencyKeys:
    """Forget idempotency keys past their 24 hours, so a key may be used again and the
    table stays small. Keys still within their time are kept, answered or not. A
    scheduled platform task; returns how many keys it removed."""

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self) -> int:
        async with self._uow as uow:
            purged = await uow.idempotency.purge_expired(self._clock.now())
            await uow.commit()
        return purged


class NewRefund(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: int | None = None
    """Minor units; omitted, whatever of the payment is not refunded yet."""


class RefundResult(msgspec.Struct, frozen=True, kw_only=True):
    refund: Refund
    payment: Payment
    replayed: bool = False


class RefundPayment:
    """Give money back on a completed payment, fully or in part. Agency admins only.

    Idempotent like a payment (same key and request: the first answer; another request
    under the key: ValidationFailed; still running: Conflict). The refund is written
    ``pending`` with its amount reserved on the payment in one transaction, so concurrent
    refunds can never give back more than was paid; the gateway refunds; then the refund
    is completed, the account's balance restored and an account that was paid in full is
    active again. A gateway that gives no answer may have refunded: the refund stays
    pending, with its reservation and its key, and the recovery task asks the gateway
    again under the same key (:class:`SettlePendingRefunds`). Only a gateway that certainly
    did nothing (an open circuit breaker, a refused request) has the refund removed, the
    key freed and GatewayUnavailable raised.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        cache: IdempotencyCache,
        gateway: PaymentGateway,
        telemetry: Telemetry,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._cache = cache
        self._gateway = gateway
        self._telemetry = telemetry

    async def execute(
        self, actor: Actor, idempotency_key: str, payment_id: UUID, command: NewRefund
    ) -> RefundResult:
        key = validate_idempotency_key(idempotency_key)
        fingerprint = _fingerprint(f"refund:{payment_id}", command)
        cached = await _cached(self._cache, self._clock, actor.agency_id, key)
        if cached is not None and may_replay_unread(actor, made_by=None):  # admins only
            return _replay_refund(cached, fingerprint, self._telemetry)
        opened = await self._open(actor, key, fingerprint, payment_id, command)
        if isinstance(opened, RefundResult):
            return opened
        payment, refund, processor = opened
        try:
            result = await self._gateway.refund(_refund_request(payment, refund, processor))
        except GatewayUnavailable as error:
            if error.request_sent:
                return await self._leave_pending(payment, refund)
            await self._abandon(actor, refund)
            raise
        done = await _complete_refund(self._uow, self._clock, actor, refund, result.reference)
        assert done is not None  # only this request removes its refund, and it has not
        return done

    async def _open(
        self, actor: Actor, key: str, fingerprint: str, payment_id: UUID, command: NewRefund
    ) -> tuple[Payment, Refund, ProcessorKind] | RefundResult:
        now = self._clock.now()
        async with self._uow as uow:
            payment = await _reachable_payment(uow, actor, payment_id)
            require_admin(actor)
            # The key first: a repeat replays even when what it did left nothing to refund.
            # A refusal below rolls the claim back with the rest.
            existing = await claim_key(uow, actor.agency_id, key, fingerprint, now)
            if existing is not None:
                return _replay_refund(existing, fingerprint, self._telemetry)
            if payment.status is not PaymentStatus.COMPLETED:
                raise Conflict(f"a {payment.status} payment cannot be refunded")
            if payment.refundable == 0:
                raise Conflict("the payment is refunded in full already")
            amount = payment.refundable if command.amount is None else command.amount
            validate_amount(amount, field="amount", allow_zero=False)
            if not await uow.payments.reserve_refund(payment.id, amount):
                raise Conflict(
                    f"at most {payment.refundable} minor units of this payment are refundable"
                )
            refund = Refund(
                id=new_id(),
                agency_id=payment.agency_id,
                payment_id=payment.id,
                amount=amount,
                status=RefundStatus.PENDING,
                gateway_reference=None,
                idempotency_key=key,
                created_by=actor.user_id,
                created_at=now,
                completed_at=None,
            )
            await uow.payments.add_refund(refund)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "payment.refund_requested",
                    entity_id=payment.id,
                    before=None,
                    after=refund,
                    at=now,
                )
            )
            processor = await uow.payment_processors.get(payment.processor_id)
            assert processor is not None  # a payment's processor is never deleted
            await uow.commit()
        return payment, refund, processor.kind

    async def _leave_pending(self, payment: Payment, refund: Refund) -> RefundResult:
        """The gateway may or may not have refunded: keep the refund pending, and answer
        (and replay, until the gateway's answer comes) that it is. Not cached: the cache
        holds final answers, and this one changes when the refund completes."""
        async with self._uow as uow:
            after = await uow.payments.lock(payment.id)
            assert after is not None  # payments are never deleted
            current = await uow.payments.refund(refund.id)
            assert current is not None  # only this request removes its refund
            result = RefundResult(refund=current, payment=after)
            if current.status is RefundStatus.PENDING:  # else the webhook answered first
                await uow.idempotency.finish(
                    refund.agency_id, _refund_key(refund), "pending", msgspec.to_builtins(result)
                )
                await uow.commit()
        return result

    async def _abandon(self, actor: Actor, refund: Refund) -> None:
        """Nothing reached the gateway, or it refused the request (the only one made under
        this key): remove the refund, give its reservation back and free its key."""
        async with self._uow as uow:
            await uow.payments.lock(refund.payment_id)  # the order of _complete_refund
            current = await uow.payments.refund(refund.id)
            if current is None or current.status is not RefundStatus.PENDING:
                return  # the recovery task came first (a call that hung a long while)
            await uow.payments.remove_refund(refund.id)
            await uow.payments.reserve_refund(refund.payment_id, -refund.amount)
            await uow.idempotency.release(refund.agency_id, _refund_key(refund))
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "payment.refund_abandoned",
                    entity_id=refund.payment_id,
                    before=refund,
                    after=None,
                    at=self._clock.now(),
                )
            )
            await uow.commit()


class SettlePendingRefunds:
    """Complete refunds left pending longer than ``older_than`` (a gateway that gave no
    answer, a crash during the call): ask the gateway again under the refund's key, which
    answers without refunding twice. A refund it gets no answer for, or a refusal, stays
    pending for the next run: only the call that first used the key can tell that nothing
    was refunded (an open circuit breaker now says nothing of the first call). A scheduled
    platform task; it goes through every such refund, ``batch`` at a time, so that those
    the gateway still gives no answer for do not hold back the others. Returns how many
    refunds it completed.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        cache: IdempotencyCache,
        gateway: PaymentGateway,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._cache = cache
        self._gateway = gateway

    async def execute(self, older_than: timedelta = timedelta(minutes=5), batch: int = 100) -> int:
        now = self._clock.now()
        completed = 0
        following = None
        while True:
            async with self._uow as uow:
                stuck = await uow.payments.pending_refunds(
                    now - older_than, batch, after=now - ASKED_AGAIN_FOR, following=following
                )
                asked = []
                for refund in stuck:
                    payment = await uow.payments.get(refund.payment_id)
                    assert payment is not None  # payments are never deleted
                    processor = await uow.payment_processors.get(payment.processor_id)
                    assert processor is not None  # a payment's processor is never deleted
                    asked.append((refund, _refund_request(payment, refund, processor.kind)))
            for refund, request in asked:
                if refund.created_at <= self._clock.now() - ASKED_AGAIN_FOR:
                    continue  # its key's time ran out while the run asked about older ones
                try:
                    result = await self._gateway.refund(request)
                except GatewayUnavailable:
                    continue
                actor = Actor.system(refund.agency_id)
                done = await _complete_refund(
                    self._uow, self._clock, actor, refund, result.reference
                )
                completed += done is not None
            if len(stuck) < batch:
                return completed
            following = RefundPosition(stuck[-1].created_at, stuck[-1].id)


def _refund_key(refund: Refund) -> str:
    assert refund.idempotency_key is not None  # refunds made through us have one
    return refund.idempotency_key


def _refund_request(payment: Payment, refund: Refund, processor: ProcessorKind) -> RefundRequest:
    assert payment.gateway_reference is not None  # completed payments carry one
    return RefundRequest(
        processor=processor,
        idempotency_key=_gateway_key(refund.agency_id, _refund_key(refund), refund.id),
        charge_reference=payment.gateway_reference,
        amount=refund.amount,
    )


async def _complete_refund(
    uow: UnitOfWork,
    clock: Clock,
    actor: Actor,
    refund: Refund,
    reference: str,
) -> RefundResult | None:
    """The gateway made ``refund``: complete it and give its amount back, once. Under the
    payment's lock, so that of those who may learn the outcome (the request, the recovery
    task, the webhook) only the first completes it; the others answer what it left.
    ``None`` if the refund is gone: its request removed it, its own call refused, before
    the recovery task asked (which the gateway's timeouts, far shorter than the task's
    wait, leave no time for)."""
    async with uow:
        payment = await uow.payments.lock(refund.payment_id)
        assert payment is not None  # payments are never deleted
        current = await uow.payments.refund(refund.id)
        if current is None:
            return None
        if current.status is RefundStatus.PENDING:
            current = await complete_pending_refund(
                uow, actor, payment, current, reference, clock.now()
            )
        await uow.commit()
    return RefundResult(refund=current, payment=payment)


async def complete_pending_refund(
    uow: UnitOfWork,
    actor: Actor,
    payment: Payment,
    refund: Refund,
    reference: str,
    now: datetime,
) -> Refund:
    """Inside the caller's unit of work, with ``payment`` locked: complete the pending
    ``refund`` (its amount is reserved on the payment already), give the amount back, and
    store the answer under the refund's key for replays while the key is still its own
    (never cached: a completed refund may still fail). Returns the completed refund."""
    completed = msgspec.structs.replace(
        refund, status=RefundStatus.COMPLETED, gateway_reference=reference, completed_at=now
    )
    await uow.payments.complete_refund(refund.id, reference, now)
    await _refunded(uow, actor, payment, completed, now)
    answer = RefundResult(refund=completed, payment=payment)
    await _answer_under_key(
        uow, refund.agency_id, _refund_key(refund), refund.created_at, now, "refunded", answer
    )
    return completed


async def fail_refund(
    uow: UnitOfWork,
    actor: Actor,
    payment: Payment,
    refund: Refund,
    failed_at: datetime,
    now: datetime,
    reference: str | None = None,
) -> IdempotencyRecord | None:
    """Inside the caller's unit of work, with ``payment`` locked: the gateway reports that
    ``refund`` failed (at ``failed_at``, by its clock), so nothing went back to the debtor.
    Its amount is refundable again; a completed one takes back off the balance what it
    gave back (an account left at zero is paid in full again), a pending one gave nothing
    back yet. ``reference``, the gateway's id for the refund, replaces the refund's own (one
    learned from a refunded total has none of the gateway's). A refund made through us
    answers its key's replays as it now stands, while the key is still its own. Returns
    that record, to cache once committed."""
    failed = msgspec.structs.replace(
        refund,
        status=RefundStatus.FAILED,
        gateway_reference=reference or refund.gateway_reference,
        failed_at=failed_at,
    )
    await uow.payments.fail_refund(refund.id, failed.gateway_reference, failed_at)
    released = await uow.payments.reserve_refund(payment.id, -refund.amount)
    assert released  # a refund's amount stays reserved on its payment until it fails
    await uow.audit_log.add(
        audit_entry(
            actor,
            "payment.refund_failed",
            entity_id=payment.id,
            before=refund,
            after=failed,
            at=now,
        )
    )
    if refund.status is RefundStatus.COMPLETED:
        await uow.accounts.adjust_balance(payment.account_id, -refund.amount, floor=None)
        await _mark_paid_in_full(uow, actor, payment.account_id, now)
    if refund.idempotency_key is None:
        return None
    released_payment = msgspec.structs.replace(
        payment, refunded_amount=payment.refunded_amount - refund.amount
    )
    answer = RefundResult(refund=failed, payment=released_payment)
    return await _answer_under_key(
        uow, refund.agency_id, refund.idempotency_key, refund.created_at, now, "failed", answer
    )


async def record_refund(
    uow: UnitOfWork, actor: Actor, payment: Payment, amount: int, reference: str, now: datetime
) -> Refund:
    """A refund made at the gateway, not through us (a webhook tells of it), whose amount
    is already reserved on ``payment``: recorded completed, inside the caller's unit of
    work, with the balance given back and the account reopened if it was paid in full."""
    refund = Refund(
        id=new_id(),
        agency_id=payment.agency_id,
        payment_id=payment.id,
        amount=amount,
        status=RefundStatus.COMPLETED,
        gateway_reference=reference,
        idempotency_key=None,
        created_by=actor.user_id,
        created_at=now,
        completed_at=now,
    )
    await uow.payments.add_refund(refund)
    await _refunded(uow, actor, payment, refund, now)
    return refund


async def _refunded(
    uow: UnitOfWork, actor: Actor, payment: Payment, refund: Refund, now: datetime
) -> None:
    """The bookkeeping of a completed refund: its audit entry on the payment, the balance
    given back."""
    await uow.audit_log.add(
        audit_entry(
            actor, "payment.refunded", entity_id=payment.id, before=None, after=refund, at=now
        )
    )
    await _give_back(uow, actor, payment.account_id, refund.amount, now)


async def _give_back(
    uow: UnitOfWork, actor: Actor, account_id: UUID, amount: int, now: datetime
) -> None:
    """Add ``amount`` back to the account's balance (a refund, a failed payment's hold) and
    make an account that was paid in full active again, audited: a balance owed again is
    collectable again."""
    balance = await uow.accounts.adjust_balance(account_id, amount, floor=None)
    account = await uow.accounts.get(account_id)
    owed = balance is not None and balance > 0
    if not owed or account is None or account.status is not AccountStatus.PAID_IN_FULL:
        return
    await move_account(uow, actor, account, AccountStatus.ACTIVE, now)


def _replay_refund(
    record: IdempotencyRecord, fingerprint: str, telemetry: Telemetry
) -> RefundResult:
    stored = msgspec.convert(
        stored_response(record, fingerprint, telemetry, "refund"), RefundResult
    )
    return msgspec.structs.replace(stored, replayed=True)
