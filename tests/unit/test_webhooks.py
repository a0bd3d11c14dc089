"""Gateway webhooks through the core: stored once, applied once, in any order."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.gateway_event import GatewayEvent, GatewayEventType
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund, RefundStatus
from debtflow_core.errors import Deferred, GatewayUnavailable, ValidationFailed
from debtflow_core.ports.payment_gateway import RefundRequest, RefundResult
from debtflow_core.use_cases.accounts import GetAccount
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from debtflow_core.use_cases.payments import (
    NewRefund,
    PurgeIdempotencyKeys,
    RefundPayment,
    SettlePendingRefunds,
)
from debtflow_core.use_cases.webhooks import (
    APPLY_GATEWAY_EVENT,
    ApplyGatewayEvent,
    ReceiveGatewayEvent,
    ResumeGatewayEvents,
)
from tests.unit.conftest import CountingGateway

CHARGE_REFUNDED = GatewayEventType.CHARGE_REFUNDED
REFUND_FAILED = GatewayEventType.REFUND_FAILED
SECOND = timedelta(seconds=1)


def key_of(refund: Refund) -> str:
    """The key a refund was sent to the gateway under, which its events repeat."""
    return f"{refund.agency_id}:{refund.idempotency_key}:{refund.id}"


class Verifier:
    """Stands in for the gateway's signature check: the payload is the event's id."""

    def __init__(self) -> None:
        self.events: dict[bytes, GatewayEvent] = {}

    def verify(self, payload: bytes, signature: str | None, received_at: datetime):
        if signature != "valid":
            raise ValidationFailed("the signature does not match", field="Stripe-Signature")
        return self.events.get(payload)


@pytest.fixture
def hooks(shop):
    verifier, queue = Verifier(), InMemoryJobQueue()
    receive = ReceiveGatewayEvent(
        shop.world.uow, verifier, queue, shop.world.clock, shop.world.telemetry
    )
    apply = ApplyGatewayEvent(shop.world.uow, shop.world.clock, shop.cache, shop.world.telemetry)

    def event(type_: GatewayEventType, payment_id, **kw) -> bytes:
        made = GatewayEvent(
            id=f"evt_{uuid.uuid4().hex[:12]}",
            type=type_,
            payment_id=payment_id,
            received_at=shop.world.clock.now(),
            **{"reference": "pi_123", **kw},
        )
        verifier.events[made.id.encode()] = made
        return made.id.encode()

    return shop, receive, apply, queue, event


async def test_an_event_is_stored_once_and_handed_to_the_workers(hooks):
    _, receive, _, queue, event = hooks
    payload = event(GatewayEventType.PAYMENT_SUCCEEDED, uuid.uuid4())
    assert await receive.execute(payload, "valid") is True
    assert await receive.execute(payload, "valid") is False  # a redelivery
    assert [task for task, _ in queue.jobs] == [APPLY_GATEWAY_EVENT] * 2  # not applied yet
    with pytest.raises(ValidationFailed):
        await receive.execute(payload, "forged")
    assert await receive.execute(b"unknown type", "valid") is False


async def test_a_confirmation_completes_a_pending_payment_once(hooks):
    shop, receive, apply, queue, event = hooks
    pending = (
        await shop.pay.execute(shop.alpha.collector, "k", shop.payment(method="pm_card_processing"))
    ).payment
    payload = event(GatewayEventType.PAYMENT_SUCCEEDED, pending.id)
    await receive.execute(payload, "valid")
    event_id = queue.jobs[-1][1]["event_id"]
    assert await apply.execute(event_id) == "completed"
    assert await apply.execute(event_id) == "completed"  # applied once, answered again
    assert shop.world.store.payments[pending.id].status is PaymentStatus.COMPLETED
    await receive.execute(payload, "valid")
    assert len(queue.jobs) == 1  # a processed event is not handed over again
    assert await shop.balance() == 7_500
    telemetry = shop.world.telemetry
    assert telemetry.webhooks_received == {
        ("payment_intent.succeeded", True): 1,
        ("payment_intent.succeeded", False): 1,
    }
    assert telemetry.webhooks_applied == {("payment_intent.succeeded", "completed"): 1}
    assert telemetry.payments[("sandbox", "completed")] == 1


async def test_a_failure_releases_the_hold_and_late_events_change_nothing(hooks):
    shop, receive, apply, queue, event = hooks
    pending = (
        await shop.pay.execute(shop.alpha.collector, "k", shop.payment(method="pm_card_processing"))
    ).payment
    failed = event(GatewayEventType.PAYMENT_FAILED, pending.id, decline_code="card_declined")
    succeeded = event(GatewayEventType.PAYMENT_SUCCEEDED, pending.id)
    for payload in (failed, succeeded):
        await receive.execute(payload, "valid")
    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs]
    assert outcomes == ["failed", "ignored"]
    payment = shop.world.store.payments[pending.id]
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "card_declined")
    assert await shop.balance() == 10_000


async def test_refunds_made_at_the_gateway_are_recorded_once(hooks):
    shop, receive, apply, queue, event = hooks
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    first = event(GatewayEventType.CHARGE_REFUNDED, paid.id, amount_refunded=1_000)
    second = event(GatewayEventType.CHARGE_REFUNDED, paid.id, amount_refunded=3_000)
    stale = event(GatewayEventType.CHARGE_REFUNDED, paid.id, amount_refunded=1_000)
    for payload in (first, second, stale):
        await receive.execute(payload, "valid")
    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs]
    assert outcomes == ["refunded", "refunded", "ignored"]
    assert shop.world.store.payments[paid.id].refunded_amount == 3_000
    assert await shop.balance() == 10_000 - 4_000 + 3_000


async def test_a_refund_event_before_the_charge_settled_completes_it_then_refunds(hooks):
    shop, receive, apply, queue, event = hooks
    pending = (
        await shop.pay.execute(
            shop.alpha.admin, "k", shop.payment(amount=4_000, method="pm_card_processing")
        )
    ).payment
    refunded = event(GatewayEventType.CHARGE_REFUNDED, pending.id, amount_refunded=1_000)
    succeeded = event(GatewayEventType.PAYMENT_SUCCEEDED, pending.id)
    for payload in (refunded, succeeded):  # out of order
        await receive.execute(payload, "valid")

    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs]

    assert outcomes == ["refunded", "ignored"]
    payment = shop.world.store.payments[pending.id]
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.COMPLETED, 1_000)
    assert await shop.balance() == 10_000 - 4_000 + 1_000


async def test_an_event_for_no_payment_of_ours_is_noted_and_dropped(hooks):
    _, receive, apply, queue, event = hooks
    await receive.execute(event(GatewayEventType.PAYMENT_SUCCEEDED, None), "valid")
    assert await apply.execute(queue.jobs[0][1]["event_id"]) == "unknown_payment"


async def test_a_refund_whose_answer_was_lost_is_completed_once_by_its_webhook(hooks):
    shop, receive, apply, queue, event = hooks

    class AnswerLost(CountingGateway):
        """Refunds, lets the gateway's webhook arrive, then times out on us."""

        async def refund(self, request: RefundRequest) -> RefundResult:
            await super().refund(request)  # the gateway refunds
            await receive.execute(
                event(GatewayEventType.CHARGE_REFUNDED, paid.id, amount_refunded=4_000), "valid"
            )
            [(_, args)] = queue.jobs
            assert await apply.execute(args["event_id"]) == "refunded"  # the pending refund
            raise GatewayUnavailable("the payment gateway gave no answer to the refund")

    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    lost = RefundPayment(world.uow, world.clock, shop.cache, AnswerLost(), world.telemetry)
    answered = await lost.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert answered.refund.status is RefundStatus.COMPLETED  # the webhook's answer
    again = await lost.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert again.replayed and again.refund == answered.refund

    world.clock.advance(timedelta(minutes=10))
    recovery = SettlePendingRefunds(world.uow, world.clock, shop.cache, shop.gateway)
    assert await recovery.execute() == 0  # nothing left pending
    assert world.store.payments[paid.id].refunded_amount == 4_000
    assert await shop.balance() == 10_000  # given back once


async def paid_with_two_refunds_unanswered(shop) -> Payment:
    """A payment of 5,000 with refunds of 1,000 and 2,000 that the gateway never answered."""
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=5_000))).payment
    shop.gateway.failing = True
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    for key, amount in (("r1", 1_000), ("r2", 2_000)):
        await refund.execute(shop.alpha.admin, key, paid.id, NewRefund(amount=amount))
    return paid


async def test_a_refund_event_completes_the_pending_refunds_its_total_covers_exactly(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = await paid_with_two_refunds_unanswered(shop)

    await receive.execute(
        event(GatewayEventType.CHARGE_REFUNDED, paid.id, amount_refunded=3_000), "valid"
    )
    [(_, args)] = queue.jobs

    assert await apply.execute(args["event_id"]) == "refunded"
    async with world.uow as uow:
        refunds = await uow.payments.refunds(paid.id)
    assert [(r.amount, r.status) for r in refunds] == [
        (1_000, RefundStatus.COMPLETED),
        (2_000, RefundStatus.COMPLETED),
    ]
    assert await shop.balance() == 10_000 - 5_000 + 3_000


async def test_a_total_that_cannot_tell_pending_refunds_apart_waits_for_their_answers(hooks):
    """Two refunds without answers, of which the gateway made only the second: its total
    (2,000) would match the first (1,000) and a dashboard refund of 1,000 as well."""
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = await paid_with_two_refunds_unanswered(shop)
    await receive.execute(
        event(GatewayEventType.CHARGE_REFUNDED, paid.id, amount_refunded=2_000), "valid"
    )
    [(_, args)] = queue.jobs

    with pytest.raises(Deferred):
        await apply.execute(args["event_id"])
    assert world.store.gateway_events[args["event_id"]].processed_at is None
    assert await shop.balance() == 10_000 - 5_000  # nothing given back on a guess

    # The recovery task asks the gateway about each refund (it makes the first now).
    shop.gateway.failing = False
    world.clock.advance(timedelta(minutes=10))
    recovery = SettlePendingRefunds(world.uow, world.clock, shop.cache, shop.gateway)
    assert await recovery.execute() == 2
    sweep = ResumeGatewayEvents(world.uow, queue, world.clock)
    assert await sweep.execute() == 1
    assert queue.jobs[-1] == (APPLY_GATEWAY_EVENT, {"event_id": args["event_id"]})
    assert await apply.execute(args["event_id"]) == "ignored"  # the answers said it all
    assert await sweep.execute() == 0  # applied now

    await receive.execute(  # later, 500 more from the gateway's dashboard
        event(GatewayEventType.CHARGE_REFUNDED, paid.id, amount_refunded=3_500), "valid"
    )
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refunded"
    assert world.store.payments[paid.id].refunded_amount == 3_500
    assert await shop.balance() == 10_000 - 5_000 + 3_500


async def test_a_completed_refund_that_failed_later_is_taken_back_off_the_balance(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "all", shop.payment(amount=10_000))).payment
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    made = (await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=4_000))).refund
    assert await shop.balance() == 4_000  # owed again, so active again
    failed = dict(refund_key=key_of(made), decline_code="expired_or_canceled_card")
    # Two deliveries of the failure under distinct ids, as Stripe may send.
    for payload in (event(REFUND_FAILED, None, **failed), event(REFUND_FAILED, None, **failed)):
        await receive.execute(payload, "valid")

    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs]

    assert outcomes == ["refund_failed", "ignored"]
    assert world.store.refunds[made.id].status is RefundStatus.FAILED
    assert world.store.payments[paid.id].refunded_amount == 0
    account = await world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (account.current_balance, account.status) == (0, AccountStatus.PAID_IN_FULL)
    replay = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=4_000))
    assert replay.replayed and replay.refund.status is RefundStatus.FAILED
    entries = await world.use(QueryAuditLog).execute(
        shop.alpha.admin, AuditFilters(entity_id=paid.id)
    )
    assert entries.items[0].action == "payment.refund_failed"
    again = await refund.execute(shop.alpha.admin, "r2", paid.id, NewRefund())
    assert again.refund.amount == 10_000  # the failed amount is refundable again


async def test_a_pending_refund_that_failed_gives_nothing_back_and_is_never_completed(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = await paid_with_two_refunds_unanswered(shop)
    shop.gateway.failing = False
    first = min(world.store.refunds.values(), key=lambda r: r.amount)
    await receive.execute(event(REFUND_FAILED, None, refund_key=key_of(first)), "valid")
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refund_failed"
    assert world.store.payments[paid.id].refunded_amount == 2_000  # the other stays reserved
    assert await shop.balance() == 5_000

    world.clock.advance(timedelta(minutes=10))
    recovery = SettlePendingRefunds(world.uow, world.clock, shop.cache, shop.gateway)
    assert await recovery.execute() == 1  # the other one only
    assert world.store.refunds[first.id].status is RefundStatus.FAILED
    assert await shop.balance() == 7_000


async def test_a_failure_event_for_no_refund_of_ours_is_noted_and_dropped(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    made = (await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())).refund
    forged = f"{made.agency_id}:other:{made.id}"  # names our refund, under another key
    for key in (None, "dashboard", f"{made.agency_id}:r:{uuid.uuid4()}", forged):
        await receive.execute(event(REFUND_FAILED, None, refund_key=key), "valid")
    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs]
    assert outcomes == ["unknown_payment"] * 3 + ["ignored"]
    assert world.store.refunds[made.id].status is RefundStatus.COMPLETED


def failed_at_the_gateway(paid: Payment, refund_id: str, amount: int, **kw) -> dict:
    """A ``refund.failed`` event's fields for a refund made at the gateway: no key of ours,
    the gateway's id for the refund, its payment's reference and its amount."""
    return dict(
        reference=refund_id,
        payment_reference=paid.gateway_reference,
        refund_amount=amount,
        decline_code="expired_or_canceled_card",
        **kw,
    )


async def test_a_refund_made_at_the_gateway_that_failed_is_taken_back_off_the_balance(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    await receive.execute(event(CHARGE_REFUNDED, paid.id, amount_refunded=4_000), "valid")
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refunded"
    assert await shop.balance() == 10_000
    failed = failed_at_the_gateway(paid, "re_dashboard", 4_000)
    # Two deliveries of the failure under distinct ids, as Stripe may send.
    for payload in (event(REFUND_FAILED, None, **failed), event(REFUND_FAILED, None, **failed)):
        await receive.execute(payload, "valid")

    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs[1:]]

    assert outcomes == ["refund_failed", "ignored"]
    [refund] = world.store.refunds.values()
    assert (refund.status, refund.gateway_reference) == (RefundStatus.FAILED, "re_dashboard")
    assert world.store.payments[paid.id].refunded_amount == 0
    assert await shop.balance() == 10_000 - 4_000
    entries = await world.use(QueryAuditLog).execute(
        shop.alpha.admin, AuditFilters(entity_id=paid.id)
    )
    assert entries.items[0].action == "payment.refund_failed"
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    again = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert again.refund.amount == 4_000  # refundable again


async def test_of_two_refunds_alike_made_at_the_gateway_a_failure_takes_back_one(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=5_000))).payment
    told = world.clock.now()
    for n, total in enumerate((1_000, 2_000)):
        await receive.execute(
            event(CHARGE_REFUNDED, paid.id, amount_refunded=total, created_at=told + n * SECOND),
            "valid",
        )
    failed = failed_at_the_gateway(paid, "re_a", 1_000, created_at=told + timedelta(days=2))
    for payload in (event(REFUND_FAILED, None, **failed), event(REFUND_FAILED, None, **failed)):
        await receive.execute(payload, "valid")

    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs]

    assert outcomes == ["refunded", "refunded", "refund_failed", "ignored"]
    refunds = sorted(world.store.refunds.values(), key=lambda r: r.created_at)
    assert [(r.status, r.amount) for r in refunds] == [
        (RefundStatus.FAILED, 1_000),
        (RefundStatus.COMPLETED, 1_000),
    ]
    assert await shop.balance() == 10_000 - 5_000 + 1_000
    other = failed_at_the_gateway(paid, "re_b", 1_000, created_at=told + timedelta(days=3))
    await receive.execute(event(REFUND_FAILED, None, **other), "valid")
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refund_failed"
    assert await shop.balance() == 10_000 - 5_000


async def test_a_failure_that_comes_before_the_total_telling_of_its_refund_waits_for_it(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    told = world.clock.now()
    failed = failed_at_the_gateway(paid, "re_a", 1_000, created_at=told + timedelta(days=2))
    await receive.execute(event(REFUND_FAILED, None, **failed), "valid")
    failure = queue.jobs[-1][1]["event_id"]
    with pytest.raises(Deferred):
        await apply.execute(failure)
    assert world.store.gateway_events[failure].processed_at is None

    late = event(CHARGE_REFUNDED, paid.id, amount_refunded=1_000, created_at=told)
    await receive.execute(late, "valid")
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refunded"
    assert await apply.execute(failure) == "refund_failed"  # its task's retry
    assert world.store.payments[paid.id].refunded_amount == 0
    assert await shop.balance() == 10_000 - 4_000


async def test_a_refund_made_at_the_gateway_after_one_failed_is_not_taken_for_it(hooks):
    """1,000 refunded at the dashboard fails; then another 1,000 is refunded there. The
    first total is late: the refund learned from the second, told after the failure, is
    not the one that failed."""
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    told = world.clock.now()
    late = event(CHARGE_REFUNDED, paid.id, amount_refunded=1_000, created_at=told)
    failed = failed_at_the_gateway(paid, "re_a", 1_000, created_at=told + timedelta(days=2))
    after = event(
        CHARGE_REFUNDED, paid.id, amount_refunded=1_000, created_at=told + timedelta(days=3)
    )
    for payload in (after, event(REFUND_FAILED, None, **failed), late):
        await receive.execute(payload, "valid")
    [after_id, failure, late_id] = [args["event_id"] for _, args in queue.jobs]

    assert await apply.execute(after_id) == "refunded"
    with pytest.raises(Deferred):
        await apply.execute(failure)
    assert await apply.execute(late_id) == "ignored"

    [refund] = world.store.refunds.values()
    assert (refund.status, refund.amount) == (RefundStatus.COMPLETED, 1_000)
    assert await shop.balance() == 10_000 - 4_000 + 1_000


async def test_a_failed_refund_of_ours_without_its_key_is_found_by_the_gateways_id(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    made = (await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=1_000))).refund
    failed = failed_at_the_gateway(paid, made.gateway_reference, 1_000)
    await receive.execute(event(REFUND_FAILED, None, **failed), "valid")
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refund_failed"
    assert world.store.refunds[made.id].status is RefundStatus.FAILED
    assert await shop.balance() == 10_000 - 4_000


async def test_a_refunded_total_told_before_a_refund_failed_does_not_give_it_back_again(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=5_000))).payment
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    made = (await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=4_000))).refund
    told = world.clock.now()
    stale = event(CHARGE_REFUNDED, paid.id, amount_refunded=4_000, created_at=told)
    failed = event(
        REFUND_FAILED, None, refund_key=key_of(made), created_at=told + timedelta(hours=2)
    )
    # After the failure, the charge's total is what was refunded since: 1,000 at the dashboard.
    later = event(
        CHARGE_REFUNDED, paid.id, amount_refunded=1_000, created_at=told + timedelta(hours=3)
    )
    for payload in (failed, stale, later):  # the stale total arrives after the failure
        await receive.execute(payload, "valid")

    outcomes = [await apply.execute(args["event_id"]) for _, args in queue.jobs]

    assert outcomes == ["refund_failed", "ignored", "refunded"]
    assert world.store.payments[paid.id].refunded_amount == 1_000
    assert await shop.balance() == 10_000 - 5_000 + 1_000


async def test_a_total_told_in_the_second_a_refund_failed_waits_for_a_later_one(hooks):
    """Stripe's times are whole seconds. Here a refund of 1,000 failed and, in that same
    second, 1,000 was refunded at the dashboard: the total of 1,000 told then cannot be
    told from one told just before the failure. Counting the failed refund in it would
    never give the dashboard's refund back; a later total, told after the failure, does."""
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    made = (await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=1_000))).refund
    second = world.clock.now().replace(microsecond=0) + 5 * SECOND
    failed = event(REFUND_FAILED, None, refund_key=key_of(made), created_at=second)
    told = event(CHARGE_REFUNDED, paid.id, amount_refunded=1_000, created_at=second)
    for payload in (failed, told):
        await receive.execute(payload, "valid")
    [failed_id, told_id] = [args["event_id"] for _, args in queue.jobs]

    assert await apply.execute(failed_id) == "refund_failed"
    with pytest.raises(Deferred):
        await apply.execute(told_id)
    assert await shop.balance() == 10_000 - 4_000  # nothing given back on a guess

    later = event(CHARGE_REFUNDED, paid.id, amount_refunded=1_500, created_at=second + SECOND)
    await receive.execute(later, "valid")  # 500 more refunded at the dashboard since
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refunded"
    assert await apply.execute(told_id) == "ignored"  # the later total covers it
    assert world.store.payments[paid.id].refunded_amount == 1_500
    assert await shop.balance() == 10_000 - 4_000 + 1_500


async def test_a_total_told_in_the_second_its_refund_failed_does_not_give_it_back_again(hooks):
    """The other reading of the same second: the total was told just before the refund
    failed, and includes it."""
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=5_000))).payment
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    made = (await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=4_000))).refund
    second = world.clock.now().replace(microsecond=0) + 5 * SECOND
    failed = event(REFUND_FAILED, None, refund_key=key_of(made), created_at=second)
    stale = event(CHARGE_REFUNDED, paid.id, amount_refunded=4_000, created_at=second)
    for payload in (failed, stale):
        await receive.execute(payload, "valid")
    [failed_id, stale_id] = [args["event_id"] for _, args in queue.jobs]

    assert await apply.execute(failed_id) == "refund_failed"
    with pytest.raises(Deferred):
        await apply.execute(stale_id)
    assert world.store.payments[paid.id].refunded_amount == 0
    assert await shop.balance() == 10_000 - 5_000


async def test_a_deferred_total_applied_after_one_of_its_refunds_failed_counts_it_once(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = await paid_with_two_refunds_unanswered(shop)  # 1,000 and 2,000 pending
    shop.gateway.failing = False
    large = max(world.store.refunds.values(), key=lambda r: r.amount)
    told = world.clock.now()
    await receive.execute(
        event(CHARGE_REFUNDED, paid.id, amount_refunded=2_000, created_at=told), "valid"
    )
    deferred = queue.jobs[-1][1]["event_id"]
    with pytest.raises(Deferred):
        await apply.execute(deferred)
    await receive.execute(
        event(REFUND_FAILED, None, refund_key=key_of(large), created_at=told + SECOND), "valid"
    )
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refund_failed"
    world.clock.advance(timedelta(minutes=10))
    recovery = SettlePendingRefunds(world.uow, world.clock, shop.cache, shop.gateway)
    assert await recovery.execute() == 1  # the small one, completed

    assert await apply.execute(deferred) == "ignored"  # its 2,000 was the failed refund's
    assert world.store.payments[paid.id].refunded_amount == 1_000
    assert await shop.balance() == 10_000 - 5_000 + 1_000


async def test_a_refund_completed_days_later_leaves_its_reused_key_to_the_new_request(hooks):
    shop, receive, apply, queue, event = hooks
    world = shop.world
    paid = (await shop.pay.execute(shop.alpha.admin, "k", shop.payment(amount=4_000))).payment
    shop.gateway.failing = True
    refund = RefundPayment(world.uow, world.clock, shop.cache, shop.gateway, world.telemetry)
    await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=1_000))  # pending
    shop.gateway.failing = False
    world.clock.advance(timedelta(hours=25))
    assert await PurgeIdempotencyKeys(world.uow, world.clock).execute() == 2
    new = await shop.pay.execute(shop.alpha.admin, "r", shop.payment(amount=500))

    await receive.execute(event(CHARGE_REFUNDED, paid.id, amount_refunded=1_000), "valid")
    assert await apply.execute(queue.jobs[-1][1]["event_id"]) == "refunded"

    shop.cache._records.clear()  # the database's record answers alike
    replay = await shop.pay.execute(shop.alpha.admin, "r", shop.payment(amount=500))
    assert replay.replayed and replay.payment == new.payment
