"""The gateway's webhooks: confirmations that arrive after (or instead of) its answers.

Receiving is quick: verify the signature, store the event once by its id, hand it to the
workers. Applying is idempotent and order-proof: an event only moves a payment that is
still in the state the event is about, so a replay, a duplicate or an event that arrives
after a later one changes nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from debtflow_core.actor import Actor
from debtflow_core.domain.gateway_event import GatewayEvent, GatewayEventType
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund, RefundStatus
from debtflow_core.errors import Deferred, NotFound
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.gateway_events import WebhookVerifier
from debtflow_core.ports.idempotency import IdempotencyCache
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.payment_gateway import ChargeOutcome, ChargeResult
from debtflow_core.ports.telemetry import Telemetry
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.payments import (
    Settlement,
    complete_pending_refund,
    fail_refund,
    made_under,
    record_refund,
    row_of_gateway_key,
)

APPLY_GATEWAY_EVENT = "debtflow.apply_gateway_event"
"""The worker task that applies a stored event; its one argument is ``event_id``."""

RESUMED_WITHIN = timedelta(days=3)
"""How long after its receipt an event left unapplied is handed to the workers again: as
long as Stripe itself retries a delivery. Past that, an operator looks at it."""


class ReceiveGatewayEvent:
    """Accept one webhook delivery. Returns whether the event was new.

    A forged, stale or malformed delivery is a ValidationFailed and stores nothing. An
    event already stored but not yet applied is handed to the workers again, so a delivery
    whose hand-over failed is repaired by the gateway's next retry.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        verifier: WebhookVerifier,
        queue: JobQueue,
        clock: Clock,
        telemetry: Telemetry,
    ) -> None:
        self._uow = uow
        self._verifier = verifier
        self._queue = queue
        self._clock = clock
        self._telemetry = telemetry

    async def execute(self, payload: bytes, signature: str | None) -> bool:
        event = self._verifier.verify(payload, signature, self._clock.now())
        if event is None:
            return False
        async with self._uow as uow:
            new = await uow.gateway_events.record(event)
            stored = event if new else await uow.gateway_events.get(event.id)
            await uow.commit()
        self._telemetry.webhook_received(event.type, new=new)
        if stored is not None and stored.processed_at is None:
            await self._queue.enqueue(APPLY_GATEWAY_EVENT, event_id=event.id)
        return new


class ApplyGatewayEvent(Settlement):
    """Apply a stored gateway event to its payment, once; returns what it did.

    - ``payment_intent.succeeded`` completes a pending payment;
    - ``payment_intent.payment_failed`` fails a pending payment and gives its hold back;
    - ``charge.refunded`` records whatever part of the refunded total we do not know of
      yet (a refund made at the gateway directly, or whose answer we lost); on a payment
      still pending it first completes the payment, as only a charge that went through
      can be refunded;
    - ``refund.failed`` marks the refund failed, makes its amount refundable again and,
      if it was completed, takes it back off the balance: one of ours, or one made at the
      gateway that a refunded total told us of.

    A platform task, run by the workers.
    """

    def __init__(
        self, uow: UnitOfWork, clock: Clock, cache: IdempotencyCache, telemetry: Telemetry
    ) -> None:
        super().__init__(uow, clock, cache, telemetry)

    async def execute(self, event_id: str) -> str:
        async with self._uow as uow:
            event = await uow.gateway_events.get(event_id)
            if event is None:
                raise NotFound.of("gateway event", event_id)
            payment = await _payment_of(uow, event)
        if event.outcome is not None:
            return event.outcome
        outcome = "unknown_payment" if payment is None else await self._dispatch(event, payment)
        async with self._uow as uow:
            # Run twice at once, both may get here; the outcome recorded first stays.
            stored = await uow.gateway_events.mark_processed(event.id, outcome, self._clock.now())
            await uow.commit()
        applied = stored or outcome
        self._telemetry.webhook_applied(event.type, applied)
        return applied

    async def _dispatch(self, event: GatewayEvent, payment: Payment) -> str:
        actor = Actor.system(payment.agency_id)
        reference = event.reference or payment.gateway_reference or ""
        if event.type is GatewayEventType.REFUND_FAILED:
            return await self._fail_refund(actor, event, payment)
        if event.type is GatewayEventType.CHARGE_REFUNDED:
            if payment.status is PaymentStatus.PENDING:
                # Only a charge that went through is refunded: its answer (the gateway's,
                # or its succeeded event) is late or lost, and this says it all the same.
                succeeded = ChargeResult(outcome=ChargeOutcome.SUCCEEDED, reference=reference)
                await self.settle_once(actor, payment.id, succeeded)
            return await self._reconcile_refunds(actor, event, payment)
        if payment.status is not PaymentStatus.PENDING:
            return "ignored"
        if event.type is GatewayEventType.PAYMENT_SUCCEEDED:
            result = ChargeResult(outcome=ChargeOutcome.SUCCEEDED, reference=reference)
        else:
            result = ChargeResult(
                outcome=ChargeOutcome.DECLINED,
                reference=reference,
                decline_code=event.decline_code,
                message=event.message,
            )
        settled, moved = await self.settle_once(actor, payment.id, result)
        return settled.payment.status if moved else "ignored"

    async def _reconcile_refunds(self, actor: Actor, event: GatewayEvent, payment: Payment) -> str:
        """Bring the payment's refunds up to the total the gateway says it refunded.

        With none of ours pending, what the completed refunds fall short of is a refund
        made at the gateway (its dashboard, say), recorded as such. With some pending
        (their answers lost, or on their way), a total that covers them all completes them
        all; any other total cannot tell which of them the gateway made, so the event is
        :class:`Deferred`: the recovery task asks the gateway about each pending refund,
        and the event, applied again (its task's retries, then
        :class:`ResumeGatewayEvents`), records what is then left over. A total that adds
        nothing to the completed refunds (a stale event) changes nothing. A total told in
        the second one of the payment's refunds failed, which may or may not include it,
        waits too while it adds anything: until the refunds recorded since (from a later
        total, told after the failure) cover it, or an operator decides once the event is
        no longer handed over again.
        """
        # Under the payment's lock: the same event run twice at once (delivery is at least
        # once), or two refund events, must not both count what is missing.
        refunded = event.amount_refunded or 0
        reference = _learned_reference(event)
        now = self._clock.now()
        async with self._uow as uow:
            current = await uow.payments.lock(payment.id)
            if current is None or current.status is not PaymentStatus.COMPLETED:
                return "ignored"
            refunds = await uow.payments.refunds(current.id)
            missing = refunded - sum(r.amount for r in refunds if _counted(event, r))
            pending = [r for r in refunds if r.status is RefundStatus.PENDING]
            if missing <= 0:
                return "ignored"
            if any(_failed_as_told(event, r) for r in refunds):
                raise Deferred(
                    f"a refunded total of {refunded} was told in the second a refund of the "
                    "payment failed: it may or may not include that refund"
                )
            if pending and missing != sum(r.amount for r in pending):
                raise Deferred(
                    f"a refunded total of {refunded} cannot tell which of the payment's "
                    f"{len(pending)} pending refunds the gateway made"
                )
            if pending:
                for refund in pending:
                    await complete_pending_refund(uow, actor, current, refund, reference, now)
            elif await uow.payments.reserve_refund(current.id, missing):
                await record_refund(uow, actor, current, missing, reference, now)
            else:
                return "ignored"  # more than the payment has left: no refund of this charge
            await uow.commit()
        return "refunded"

    async def _fail_refund(self, actor: Actor, event: GatewayEvent, payment: Payment) -> str:
        """Undo a refund the gateway reports failed (:func:`_failed_refund` finds it). One
        already failed is left as it is. One not found while the event tells its amount is
        taken to be a refund made at the gateway whose refunded total is not applied yet
        (events come in any order): the event is :class:`Deferred` until it is, rather
        than leave the refund, once recorded, given back for good."""
        async with self._uow as uow:
            current = await uow.payments.lock(payment.id)
            assert current is not None  # payments are never deleted
            refund = await _failed_refund(uow, event, await uow.payments.refunds(current.id))
            if refund is None and _made_at_the_gateway(event):
                raise Deferred(
                    f"the payment has no refund of {event.refund_amount} made at the gateway "
                    f"that could be its refund {event.reference}, reported failed"
                )
            if refund is None or refund.status is RefundStatus.FAILED:
                return "ignored"
            now = self._clock.now()
            failed_at = event.created_at or now
            record = await fail_refund(
                uow, actor, current, refund, failed_at, now, reference=event.reference
            )
            await uow.commit()
        if record is not None:
            await self._cache.put(record)
        return "refund_failed"


async def _payment_of(uow: UnitOfWork, event: GatewayEvent) -> Payment | None:
    """The event's payment: by our id in the charge's metadata, or for a refund's event
    by the gateway's reference of the payment refunded, else through the refund its key
    names."""
    if event.payment_id is not None:
        return await uow.payments.get(event.payment_id)
    if event.payment_reference:
        found = await uow.payments.get_by_reference(event.payment_reference)
        if found is not None:
            return found
    refund_id = row_of_gateway_key(event.refund_key or "")
    refund = None if refund_id is None else await uow.payments.refund(refund_id)
    return None if refund is None else await uow.payments.get(refund.payment_id)


async def _failed_refund(
    uow: UnitOfWork, event: GatewayEvent, refunds: list[Refund]
) -> Refund | None:
    """Which of a payment's ``refunds`` a ``refund.failed`` event is about: the one made
    under the key it names; else the one stored with the gateway's id for it (a refund
    made through us, or one that failed already); else, for a refund made at the gateway,
    which we learned of from a refunded total without its id, the oldest such refund still
    completed, of its amount, learned from a total told by the time of the failure (one
    told after it cannot include it). Learned refunds of one amount are alike, and the one
    failed is stored with the gateway's id, so a second delivery of the event finds it
    rather than another."""
    key = event.refund_key or ""
    found = next((r for r in refunds if made_under(r, key)), None)
    if found is not None or event.reference is None:
        return found
    found = next((r for r in refunds if r.gateway_reference == event.reference), None)
    if found is not None:
        return found
    for refund in refunds:
        alike = refund.idempotency_key is None and refund.amount == event.refund_amount
        if alike and refund.status is RefundStatus.COMPLETED:
            told = await _told_at(uow, refund)
            failed = event.created_at
            # A total told in the failure's own second is taken to include it: only a
            # refund of the same amount made at the gateway in that second, after the
            # failure, could be mistaken for it, while refusing would leave to an operator
            # every refund made and failed within one second.
            if told is None or failed is None or told <= failed:
                return refund
    return None


def _learned_reference(event: GatewayEvent) -> str:
    """The reference of a refund learned from ``event``'s refunded total: the gateway does
    not say which of its refunds make the total, so the event's id stands for it."""
    return f"{event.id}:{event.reference}"


async def _told_at(uow: UnitOfWork, learned: Refund) -> datetime | None:
    """When the gateway told the refunded total ``learned`` was recorded from, if known."""
    event_id = (learned.gateway_reference or "").partition(":")[0]
    source = await uow.gateway_events.get(event_id)
    return None if source is None else source.created_at


def _made_at_the_gateway(event: GatewayEvent) -> bool:
    """Whether a ``refund.failed`` event could be about a refund made at the gateway, found
    once its refunded total is applied: it tells the refund's id and amount."""
    return event.reference is not None and event.refund_amount is not None


def _counted(event: GatewayEvent, refund: Refund) -> bool:
    """Whether the refunded total ``event`` tells surely includes ``refund``: a completed one
    always; a failed one if the gateway told the total before the refund failed (a stale or
    deferred event), which is taken to be so when either time is unknown. Counting it
    otherwise would give its amount back again as a refund made at the gateway.

    The gateway's times are whole seconds: a total told in the second the refund failed may
    have been told before the failure or after it (and after a new refund made in that
    second). It is not counted here, and :func:`_failed_as_told` has the caller wait rather
    than guess whenever that leaves something missing: either guess loses money, one by
    giving the failed amount back again, the other by never giving the new refund back."""
    if refund.status is RefundStatus.COMPLETED:
        return True
    if refund.status is not RefundStatus.FAILED:
        return False
    told, failed = event.created_at, refund.failed_at
    return told is None or failed is None or told < failed


def _failed_as_told(event: GatewayEvent, refund: Refund) -> bool:
    """Whether ``refund`` failed in the very second ``event`` told its total, by the
    gateway's clock: whether that total includes it cannot be told."""
    told, failed = event.created_at, refund.failed_at
    return refund.status is RefundStatus.FAILED and told is not None and told == failed


class ResumeGatewayEvents:
    """Hand the workers again the stored events still unapplied ``older_than`` after their
    receipt: one :class:`Deferred` past its task's last retry (refunds of its payment still
    waiting for the gateway's word, a failed refund whose total is not applied yet), one
    whose job was lost. Applying is idempotent, so an
    event still waiting in a backed-up queue may go twice. Events received more than
    :data:`RESUMED_WITHIN` ago are left alone. A scheduled platform task; returns how many
    it handed over.
    """

    def __init__(self, uow: UnitOfWork, queue: JobQueue, clock: Clock) -> None:
        self._uow = uow
        self._queue = queue
        self._clock = clock

    async def execute(self, older_than: timedelta = timedelta(minutes=10), batch: int = 100) -> int:
        now = self._clock.now()
        async with self._uow as uow:
            waiting = await uow.gateway_events.unapplied(
                received_before=now - older_than,
                received_after=now - RESUMED_WITHIN,
                limit=batch,
            )
        for event_id in waiting:
            await self._queue.enqueue(APPLY_GATEWAY_EVENT, event_id=event_id)
        return len(waiting)
