"""Payments through the core: phases, idempotency, holds, declines, outages, recovery."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import msgspec
import pytest

from debtflow_adapters.memory import InMemoryUnitOfWork
from debtflow_adapters.memory.idempotency_cache import InMemoryIdempotencyCache
from debtflow_adapters.payment_steps import PaymentSteps
from debtflow_core.actor import Actor
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.payment import PaymentStatus, Refund, RefundStatus
from debtflow_core.errors import (
    Conflict,
    GatewayUnavailable,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from debtflow_core.ports.payment_gateway import (
    ChargeLookup,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundRequest,
    RefundResult,
)
from debtflow_core.ports.payments import Opened, Opening
from debtflow_core.use_cases.accounts import AssignCollector, GetAccount
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from debtflow_core.use_cases.payments import (
    GetPayment,
    ListPayments,
    MakePayment,
    NewRefund,
    PaymentOutcome,
    PurgeIdempotencyKeys,
    RefundPayment,
    Settlement,
    SettlePendingPayments,
    SettlePendingRefunds,
    fail_refund,
)
from tests.unit.conftest import CountingGateway


async def test_a_payment_completes_and_takes_the_balance(shop):
    result = await shop.pay.execute(shop.alpha.collector, "key-1", shop.payment())
    assert result.outcome is PaymentOutcome.COMPLETED
    assert result.payment.status is PaymentStatus.COMPLETED
    assert result.payment.gateway_reference.startswith("pi_sandbox_")
    assert await shop.balance() == 7_500
    entries = await shop.world.use(QueryAuditLog).execute(
        shop.alpha.admin, AuditFilters(entity_id=result.payment.id)
    )
    assert [e.action for e in entries.items] == ["payment.completed", "payment.created"]


async def test_paying_the_whole_balance_marks_the_account_paid_in_full(shop):
    await shop.pay.execute(shop.alpha.admin, "all", shop.payment(amount=10_000))
    account = await shop.world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (account.current_balance, account.status) == (0, AccountStatus.PAID_IN_FULL)


async def test_a_decline_fails_the_payment_and_gives_the_hold_back(shop):
    result = await shop.pay.execute(
        shop.alpha.collector, "k", shop.payment(method="pm_card_chargeDeclinedInsufficientFunds")
    )
    assert result.outcome is PaymentOutcome.DECLINED
    assert (result.payment.status, result.payment.failure_code) == (
        PaymentStatus.FAILED,
        "insufficient_funds",
    )
    assert await shop.balance() == 10_000


async def test_a_processing_charge_stays_pending_and_holds_the_amount(shop):
    result = await shop.pay.execute(
        shop.alpha.collector, "k", shop.payment(method="pm_card_processing")
    )
    assert result.outcome is PaymentOutcome.PENDING
    assert result.payment.status is PaymentStatus.PENDING
    assert await shop.balance() == 7_500


async def test_the_same_key_and_body_replays_without_charging_again(shop):
    first = await shop.pay.execute(shop.alpha.collector, "same", shop.payment())
    again = await shop.pay.execute(shop.alpha.collector, "same", shop.payment())
    assert again.replayed and not first.replayed
    assert again.payment == first.payment
    assert shop.gateway.calls == 1
    assert await shop.balance() == 7_500
    shop.cache._records.clear()  # without the fast path, the database answers the same
    from_db = await shop.pay.execute(shop.alpha.collector, "same", shop.payment())
    assert from_db.payment == first.payment and from_db.replayed
    with pytest.raises(ValidationFailed) as caught:
        await shop.pay.execute(shop.alpha.collector, "same", shop.payment(amount=100))
    assert caught.value.field == "Idempotency-Key"
    telemetry = shop.world.telemetry
    assert telemetry.payments == {("sandbox", "completed"): 1}
    assert telemetry.collected == {"USD": 2_500}
    assert telemetry.replays == {"payment": 2}
    assert telemetry.conflicts == {("payment", "different_request"): 1}


async def test_fifty_concurrent_requests_with_one_key_charge_once(shop):
    shop.gateway.latency = 0.01
    outcomes = await asyncio.gather(
        *(shop.pay.execute(shop.alpha.collector, "burst", shop.payment()) for _ in range(50)),
        return_exceptions=True,
    )
    payments = {o.payment.id for o in outcomes if not isinstance(o, BaseException)}
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(payments) == 1
    assert len(conflicts) + sum(not isinstance(o, BaseException) for o in outcomes) == 50
    assert shop.gateway.calls == 1
    assert await shop.balance() == 7_500


async def test_concurrent_payments_never_take_more_than_the_balance(shop):
    shop.gateway.latency = 0.005
    outcomes = await asyncio.gather(
        *(
            shop.pay.execute(shop.alpha.collector, f"k{n}", shop.payment(amount=300))
            for n in range(50)
        ),
        return_exceptions=True,
    )
    completed = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ValidationFailed)]
    assert len(completed) == 33 and len(refused) == 17
    assert await shop.balance() == 10_000 - 300 * 33 == 100


async def test_bad_payments_are_refused_and_write_nothing(shop):
    audit = dict(shop.world.store.audit_log)
    cases = {
        "amount": shop.payment(amount=0),
        "currency": shop.payment(currency="EUR"),
        "processor_id": shop.payment(processor_id=uuid.uuid4()),
        "payment_method": shop.payment(method="4242 4242 4242 4242"),
        "Idempotency-Key": shop.payment(),
    }
    for field, command in cases.items():
        key = "" if field == "Idempotency-Key" else f"bad-{field}"
        with pytest.raises(ValidationFailed) as caught:
            await shop.pay.execute(shop.alpha.collector, key, command)
        assert caught.value.field == field
    with pytest.raises(ValidationFailed, match="more than the balance"):
        await shop.pay.execute(shop.alpha.collector, "too-much", shop.payment(amount=10_001))
    assert shop.world.store.audit_log == audit
    assert shop.world.store.payments == {}
    assert shop.gateway.calls == 0
    assert "4242424242424242" not in repr(shop.world.store)


async def test_a_card_number_in_an_idempotency_key_is_refused_and_never_kept(shop):
    refund, _ = refunds_of(shop)
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    for key in ["4242424242424242", "order-4242 4242 4242 4242", "pay_4242424242424242"]:
        with pytest.raises(ValidationFailed) as caught:
            await shop.pay.execute(shop.alpha.collector, key, shop.payment(method="pm_card_visa"))
        assert caught.value.field == "Idempotency-Key" and "4242" not in caught.value.detail
        with pytest.raises(ValidationFailed) as caught:
            await refund.execute(shop.alpha.admin, key, paid.id, NewRefund())
        assert caught.value.field == "Idempotency-Key"
    assert list(shop.world.store.payments) == [paid.id]
    assert shop.gateway.calls == 1
    assert "4242424242424242" not in repr(shop.world.store)


async def test_an_agency_may_allow_overpayment(shop):
    agency_id = shop.alpha.admin.agency_id
    async with shop.world.uow as uow:
        agency = await uow.agencies.get(agency_id)
    shop.world.store.agencies[agency_id] = msgspec.structs.replace(agency, allow_overpayment=True)
    result = await shop.pay.execute(shop.alpha.admin, "over", shop.payment(amount=12_000))
    assert result.outcome is PaymentOutcome.COMPLETED
    account = await shop.world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    # A credit of 2,000 is owed to the debtor: nothing is owed on the account.
    assert (account.current_balance, account.status) == (-2_000, AccountStatus.PAID_IN_FULL)


async def test_an_overpaid_account_stays_paid_in_full_until_money_is_owed_again(shop):
    agency_id = shop.alpha.admin.agency_id
    async with shop.world.uow as uow:
        agency = await uow.agencies.get(agency_id)
    shop.world.store.agencies[agency_id] = msgspec.structs.replace(agency, allow_overpayment=True)
    refund = RefundPayment(
        shop.world.uow, shop.world.clock, shop.cache, shop.gateway, shop.world.telemetry
    )
    paid = (await shop.pay.execute(shop.alpha.admin, "over", shop.payment(amount=12_000))).payment

    await refund.execute(shop.alpha.admin, "credit", paid.id, NewRefund(amount=2_000))
    account = await shop.world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (account.current_balance, account.status) == (0, AccountStatus.PAID_IN_FULL)
    await refund.execute(shop.alpha.admin, "more", paid.id, NewRefund(amount=1))
    account = await shop.world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (account.current_balance, account.status) == (1, AccountStatus.ACTIVE)


async def test_reach_and_roles_apply_to_payments(shop):
    colleague_account = await shop.world.account(
        shop.alpha.admin, external_id="A-2", collector=shop.alpha.colleague
    )
    with pytest.raises(NotFound):
        await shop.pay.execute(
            shop.alpha.collector, "x", shop.payment(account_id=colleague_account.id)
        )
    with pytest.raises(PermissionDenied):
        await shop.pay.execute(shop.alpha.readonly, "y", shop.payment())
    paid = await shop.pay.execute(shop.alpha.collector, "z", shop.payment())
    with pytest.raises(NotFound) as hidden:
        await shop.world.use(GetPayment).execute(shop.alpha.colleague, paid.payment.id)
    assert hidden.value.detail == f"payment {paid.payment.id} was not found"
    assert (
        await shop.world.use(GetPayment).execute(shop.alpha.readonly, paid.payment.id)
    ) == paid.payment
    mine = await shop.world.use(ListPayments).execute(shop.alpha.collector)
    assert [p.id for p in mine.items] == [paid.payment.id]
    assert (await shop.world.use(ListPayments).execute(shop.alpha.colleague)).items == []


async def test_an_open_breaker_cancels_the_payment_and_frees_the_key(shop):
    shop.gateway.down_until_sent = True
    with pytest.raises(GatewayUnavailable):
        await shop.pay.execute(shop.alpha.collector, "retry-me", shop.payment())
    assert await shop.balance() == 10_000
    [cancelled] = shop.world.store.payments.values()
    assert (cancelled.status, cancelled.failure_code) == (
        PaymentStatus.FAILED,
        "gateway_unavailable",
    )
    shop.gateway.down_until_sent = False
    retried = await shop.pay.execute(shop.alpha.collector, "retry-me", shop.payment())
    assert retried.outcome is PaymentOutcome.COMPLETED and not retried.replayed
    assert await shop.balance() == 7_500
    assert shop.world.telemetry.payments == {
        ("sandbox", "failed"): 1,
        ("sandbox", "completed"): 1,
    }


async def test_no_answer_leaves_it_pending_and_recovery_settles_it_once(shop):
    shop.gateway.failing = True
    result = await shop.pay.execute(shop.alpha.collector, "lost", shop.payment())
    assert result.outcome is PaymentOutcome.PENDING
    assert await shop.balance() == 7_500
    replay = await shop.pay.execute(shop.alpha.collector, "lost", shop.payment())
    assert replay.outcome is PaymentOutcome.PENDING and replay.replayed

    assert await shop.settle.execute(older_than=timedelta(minutes=5)) == 0  # still failing
    shop.gateway.failing = False
    assert await shop.settle.execute(older_than=timedelta(minutes=5)) == 0  # too recent
    shop.world.clock.advance(timedelta(minutes=10))
    assert await shop.settle.execute(older_than=timedelta(minutes=5)) == 1
    settled = await shop.world.use(GetPayment).execute(shop.alpha.admin, result.payment.id)
    assert settled.status is PaymentStatus.COMPLETED
    assert await shop.balance() == 7_500
    assert max(shop.gateway.charged.values()) == 1
    assert await shop.settle.execute(older_than=timedelta(minutes=5)) == 0
    # Reported pending when answered, completed when the recovery settled it.
    assert shop.world.telemetry.payments == {
        ("sandbox", "pending"): 1,
        ("sandbox", "completed"): 1,
    }


async def test_a_crash_after_the_charge_is_settled_by_recovery_without_a_second_charge(shop):
    class CrashAfterCharge(CountingGateway):
        async def charge(self, request):
            await super().charge(request)
            raise asyncio.CancelledError  # the process dies before phase 3

    crashing = MakePayment(
        shop.world.uow, shop.world.clock, shop.cache, CrashAfterCharge(), shop.world.telemetry
    )
    with pytest.raises(asyncio.CancelledError):
        await crashing.execute(shop.alpha.collector, "crash", shop.payment())
    [pending] = shop.world.store.payments.values()
    assert pending.status is PaymentStatus.PENDING
    with pytest.raises(Conflict):  # the key is still in flight
        await shop.pay.execute(shop.alpha.collector, "crash", shop.payment())

    shop.world.clock.advance(timedelta(minutes=10))
    assert await shop.settle.execute() == 1
    assert shop.world.store.payments[pending.id].status is PaymentStatus.COMPLETED
    replay = await shop.pay.execute(shop.alpha.collector, "crash", shop.payment())
    assert replay.outcome is PaymentOutcome.COMPLETED and replay.replayed
    assert await shop.balance() == 7_500


async def test_refunds_restore_the_balance_and_reopen_a_paid_account(shop):
    refund = RefundPayment(
        shop.world.uow, shop.world.clock, shop.cache, shop.gateway, shop.world.telemetry
    )
    paid = (await shop.pay.execute(shop.alpha.admin, "all", shop.payment(amount=10_000))).payment
    partial = await refund.execute(shop.alpha.admin, "r1", paid.id, NewRefund(amount=4_000))
    assert (partial.refund.amount, partial.payment.refunded_amount) == (4_000, 4_000)
    account = await shop.world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (account.current_balance, account.status) == (4_000, AccountStatus.ACTIVE)

    replayed = await refund.execute(shop.alpha.admin, "r1", paid.id, NewRefund(amount=4_000))
    assert replayed.replayed and replayed.refund == partial.refund
    rest = await refund.execute(shop.alpha.admin, "r2", paid.id, NewRefund())
    assert rest.refund.amount == 6_000
    assert await shop.balance() == 10_000
    with pytest.raises(Conflict):
        await refund.execute(shop.alpha.admin, "r3", paid.id, NewRefund(amount=1))
    with pytest.raises(ValidationFailed):
        await refund.execute(shop.alpha.admin, "r1", paid.id, NewRefund(amount=1))


async def test_refunds_are_for_admins_on_completed_payments_within_the_amount(shop):
    refund = RefundPayment(
        shop.world.uow, shop.world.clock, shop.cache, shop.gateway, shop.world.telemetry
    )
    paid = (await shop.pay.execute(shop.alpha.collector, "p", shop.payment())).payment
    with pytest.raises(PermissionDenied):
        await refund.execute(shop.alpha.collector, "r", paid.id, NewRefund())
    with pytest.raises(Conflict, match="refundable"):
        await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=2_501))
    declined = (
        await shop.pay.execute(shop.alpha.admin, "d", shop.payment(method="pm_card_chargeDeclined"))
    ).payment
    with pytest.raises(Conflict, match="failed payment"):
        await refund.execute(shop.alpha.admin, "r2", declined.id, NewRefund())
    with pytest.raises(NotFound):
        await refund.execute(shop.alpha.admin, "r3", uuid.uuid4(), NewRefund())


async def test_concurrent_refunds_never_give_back_more_than_was_paid(shop):
    shop.gateway.latency = 0.005
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment(amount=1_000))).payment

    def refund() -> RefundPayment:  # one per request, each with its own unit of work
        uow = InMemoryUnitOfWork(shop.world.store)
        return RefundPayment(uow, shop.world.clock, shop.cache, shop.gateway, shop.world.telemetry)

    outcomes = await asyncio.gather(
        *(
            refund().execute(shop.alpha.admin, f"r{n}", paid.id, NewRefund(amount=300))
            for n in range(10)
        ),
        return_exceptions=True,
    )
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(done) == 3
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, BaseException))
    assert await shop.balance() == 10_000 - 1_000 + 900


def refunds_of(shop, gateway=None) -> tuple[RefundPayment, SettlePendingRefunds]:
    world, gateway = shop.world, gateway or shop.gateway
    return (
        RefundPayment(world.uow, world.clock, shop.cache, gateway, world.telemetry),
        SettlePendingRefunds(world.uow, world.clock, shop.cache, gateway),
    )


async def stored_refunds(shop, payment_id: uuid.UUID) -> list[Refund]:
    async with shop.world.uow as uow:
        return await uow.payments.refunds(payment_id)


class RefusingRefunds(CountingGateway):
    """A gateway that certainly makes no refund: nothing reaches it, or it refuses."""

    async def refund(self, request: RefundRequest) -> RefundResult:
        raise GatewayUnavailable("the payment gateway refused the refund", request_sent=False)


async def test_a_refund_the_gateway_did_not_answer_stays_pending_until_recovery_completes_it(
    shop,
):
    refund, recovery = refunds_of(shop)
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    shop.gateway.failing = True
    pending = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert (pending.refund.status, pending.refund.gateway_reference) == (RefundStatus.PENDING, None)
    assert pending.payment.refunded_amount == 2_500  # reserved: nobody can refund it again
    assert await shop.balance() == 7_500  # not given back before the gateway says so
    with pytest.raises(Conflict, match="refunded in full"):
        await refund.execute(shop.alpha.admin, "another", paid.id, NewRefund())
    again = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert again.replayed and again.refund == pending.refund

    shop.gateway.failing = False
    assert await recovery.execute() == 0  # too recent
    shop.world.clock.advance(timedelta(minutes=10))
    assert await recovery.execute() == 1
    assert await shop.balance() == 10_000
    [completed] = await stored_refunds(shop, paid.id)
    assert (completed.id, completed.status) == (pending.refund.id, RefundStatus.COMPLETED)
    assert completed.gateway_reference.startswith("re_")
    replayed = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert replayed.replayed and replayed.refund == completed
    assert await recovery.execute() == 0
    assert completed.completed_at - completed.created_at >= timedelta(minutes=10)
    entries = await shop.world.use(QueryAuditLog).execute(
        shop.alpha.admin, AuditFilters(entity_id=paid.id)
    )
    assert [e.action for e in entries.items][:2] == ["payment.refunded", "payment.refund_requested"]
    assert entries.items[0].after["id"] == str(completed.id)


async def test_a_refund_that_reached_no_gateway_is_removed_and_its_key_freed(shop):
    refund, _ = refunds_of(shop, RefusingRefunds())
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    with pytest.raises(GatewayUnavailable):
        await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert shop.world.store.payments[paid.id].refunded_amount == 0
    assert await stored_refunds(shop, paid.id) == []
    retried = await refunds_of(shop)[0].execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert (retried.refund.status, retried.refund.amount) == (RefundStatus.COMPLETED, 2_500)
    assert await shop.balance() == 10_000


class KeyedRefunds(RefusingRefunds):
    """Refuses the first refund; keeps the gateway key of every refund asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    async def refund(self, request: RefundRequest) -> RefundResult:
        self.keys.append(request.idempotency_key)
        if len(self.keys) == 1:
            return await super().refund(request)
        return await CountingGateway.refund(self, request)


async def test_a_key_freed_by_a_refusal_reaches_the_gateway_as_a_new_request(shop):
    """The gateway keeps what it answered under a key, refusals too: the retry must not
    come under the refused request's gateway key, or it would get that refusal back."""
    gateway = KeyedRefunds()
    refund, _ = refunds_of(shop, gateway)
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    with pytest.raises(GatewayUnavailable):
        await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=2_000))

    retried = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=1_000))

    assert retried.refund.status is RefundStatus.COMPLETED
    first, second = gateway.keys
    assert first != second
    agency = shop.alpha.admin.agency_id
    assert first.startswith(f"{agency}:r:") and second == f"{agency}:r:{retried.refund.id}"


async def test_recovery_keeps_a_refund_pending_while_the_gateway_will_not_say(shop):
    refund, _ = refunds_of(shop)
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    shop.gateway.failing = True
    await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund(amount=1_000))
    shop.world.clock.advance(timedelta(minutes=10))
    # An open breaker or a refusal now says nothing of the first call, which may have refunded.
    _, refusing = refunds_of(shop, RefusingRefunds())
    assert await refusing.execute() == 0
    assert await refunds_of(shop)[1].execute() == 0  # still failing
    [pending] = await stored_refunds(shop, paid.id)
    assert pending.status is RefundStatus.PENDING
    assert shop.world.store.payments[paid.id].refunded_amount == 1_000
    shop.gateway.failing = False
    assert await refunds_of(shop)[1].execute() == 1
    assert await shop.balance() == 7_500 + 1_000


class SettledDuringTheCharge(CountingGateway):
    """A gateway whose decline reaches the payment (as a webhook would) before its answer."""

    def __init__(self, settlement: Settlement, actor: Actor) -> None:
        super().__init__()
        self._settlement = settlement
        self._actor = actor

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        result = await super().charge(request)
        declined = ChargeResult(
            outcome=ChargeOutcome.DECLINED,
            reference=result.reference,
            decline_code="card_declined",
            message="declined by webhook",
        )
        await self._settlement.settle(self._actor, request.payment_id, declined)
        return result


async def test_a_settlement_that_came_first_is_what_the_payment_answers(shop):
    world = shop.world
    webhook = Settlement(InMemoryUnitOfWork(world.store), world.clock, shop.cache, world.telemetry)
    gateway = SettledDuringTheCharge(webhook, Actor.system(shop.alpha.admin.agency_id))
    pay = MakePayment(world.uow, world.clock, shop.cache, gateway, world.telemetry)
    result = await pay.execute(shop.alpha.collector, "k", shop.payment())
    assert result.outcome is PaymentOutcome.DECLINED
    assert result.payment.failure_message == "declined by webhook"
    assert await shop.balance() == 10_000  # the hold given back once
    assert world.telemetry.payments == {("sandbox", "failed"): 1}  # counted once, found kind
    entries = await world.use(QueryAuditLog).execute(
        shop.alpha.admin, AuditFilters(entity_id=result.payment.id)
    )
    assert [e.action for e in entries.items] == ["payment.failed", "payment.created"]
    again = await pay.execute(shop.alpha.collector, "k", shop.payment())
    assert again.replayed and again.payment == result.payment


class SettledThenTimedOut(SettledDuringTheCharge):
    """A gateway that charges, whose webhook completes the payment, and whose own answer
    is lost to a timeout."""

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        result = await CountingGateway.charge(self, request)
        await self._settlement.settle(self._actor, request.payment_id, result)
        raise GatewayUnavailable("no answer in time", request_sent=True)


async def test_a_timeout_after_a_webhook_settled_the_payment_answers_the_settlement(shop):
    world = shop.world
    webhook = Settlement(InMemoryUnitOfWork(world.store), world.clock, shop.cache, world.telemetry)
    gateway = SettledThenTimedOut(webhook, Actor.system(shop.alpha.admin.agency_id))
    pay = MakePayment(world.uow, world.clock, shop.cache, gateway, world.telemetry)

    result = await pay.execute(shop.alpha.collector, "k", shop.payment())

    assert (result.outcome, result.payment.status) == (
        PaymentOutcome.COMPLETED,
        PaymentStatus.COMPLETED,
    )
    again = await pay.execute(shop.alpha.collector, "k", shop.payment())
    assert again.replayed and again.outcome is PaymentOutcome.COMPLETED
    assert again.payment == result.payment
    assert await shop.balance() == 7_500
    assert world.telemetry.payments == {("sandbox", "completed"): 1}


async def test_the_payment_that_takes_the_balance_to_zero_marks_it_paid_in_full(shop):
    first = await shop.pay.execute(shop.alpha.admin, "a", shop.payment(amount=4_000))
    last = await shop.pay.execute(shop.alpha.admin, "b", shop.payment(amount=6_000))
    assert (first.outcome, last.outcome) == (PaymentOutcome.COMPLETED,) * 2
    account = await shop.world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (account.current_balance, account.status) == (0, AccountStatus.PAID_IN_FULL)


async def test_a_failure_after_the_account_was_paid_in_full_makes_it_active_again(shop):
    world = shop.world
    pending = await shop.pay.execute(
        shop.alpha.admin, "a", shop.payment(amount=5_000, method="pm_card_processing")
    )
    await shop.pay.execute(shop.alpha.admin, "b", shop.payment(amount=5_000))
    paid = await world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (paid.current_balance, paid.status) == (0, AccountStatus.PAID_IN_FULL)
    webhook = Settlement(world.uow, world.clock, shop.cache, world.telemetry)
    declined = ChargeResult(
        outcome=ChargeOutcome.DECLINED,
        reference=pending.payment.gateway_reference,
        decline_code="insufficient_funds",
        message="declined later",
    )
    await webhook.settle(Actor.system(shop.alpha.admin.agency_id), pending.payment.id, declined)
    account = await world.use(GetAccount).execute(shop.alpha.admin, shop.account.id)
    assert (account.current_balance, account.status) == (5_000, AccountStatus.ACTIVE)
    entries = await world.use(QueryAuditLog).execute(
        shop.alpha.admin, AuditFilters(entity_id=shop.account.id)
    )
    assert [e.action for e in entries.items][:2] == [
        "account.status_changed",
        "account.status_changed",
    ]
    again = await shop.pay.execute(shop.alpha.admin, "c", shop.payment(amount=5_000))
    assert again.outcome is PaymentOutcome.COMPLETED


async def test_recovery_goes_on_past_a_payment_the_gateway_still_gives_no_answer_for(shop):
    shop.gateway.failing = True
    stuck = await shop.pay.execute(shop.alpha.collector, "stuck", shop.payment(amount=1_000))
    later = await shop.pay.execute(shop.alpha.collector, "later", shop.payment(amount=2_000))
    shop.gateway.failing = False

    class FailingForOneKey(CountingGateway):
        async def charge(self, request: ChargeRequest) -> ChargeResult:
            if request.payment_id == stuck.payment.id:
                raise GatewayUnavailable("the gateway answers this key with a 500")
            return await super().charge(request)

    world = shop.world
    recovery = SettlePendingPayments(
        world.uow, world.clock, shop.cache, FailingForOneKey(), world.telemetry
    )
    world.clock.advance(timedelta(minutes=10))
    assert await recovery.execute() == 1
    statuses = {p.id: p.status for p in world.store.payments.values()}
    assert statuses == {
        stuck.payment.id: PaymentStatus.PENDING,
        later.payment.id: PaymentStatus.COMPLETED,
    }


async def test_recovery_looks_up_a_payment_left_processing_whatever_its_age(shop):
    pending = await shop.pay.execute(
        shop.alpha.collector, "slow", shop.payment(amount=1_000, method="pm_card_processing")
    )
    calls = shop.gateway.calls
    shop.world.clock.advance(timedelta(hours=30))  # past the key's lifetime; no webhook came
    assert await shop.settle.execute() == 1
    assert shop.gateway.calls == calls  # looked up, not charged again under its key
    settled = shop.world.store.payments[pending.payment.id]
    assert settled.status is PaymentStatus.COMPLETED
    assert settled.gateway_reference == pending.payment.gateway_reference
    assert await shop.balance() == 9_000


class BankDeclines(CountingGateway):
    """The bank declines every payment left processing, once asked where it stands."""

    def __init__(self) -> None:
        super().__init__()
        self.looked_up: list[str] = []

    async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
        self.looked_up.append(lookup.reference)
        return ChargeResult(
            outcome=ChargeOutcome.DECLINED,
            reference=lookup.reference,
            decline_code="insufficient_funds",
            message="declined by the bank",
        )


async def test_a_payment_its_bank_declined_after_processing_fails_and_gives_the_hold_back(shop):
    pending = await shop.pay.execute(
        shop.alpha.collector, "slow", shop.payment(amount=1_000, method="pm_card_processing")
    )
    world = shop.world
    gateway = BankDeclines()
    recovery = SettlePendingPayments(world.uow, world.clock, shop.cache, gateway, world.telemetry)
    world.clock.advance(timedelta(minutes=10))
    assert await recovery.execute() == 1
    assert gateway.looked_up == [pending.payment.gateway_reference]
    failed = world.store.payments[pending.payment.id]
    assert (failed.status, failed.failure_code) == (PaymentStatus.FAILED, "insufficient_funds")
    assert await shop.balance() == 10_000


async def test_recovery_goes_through_every_stuck_payment_a_batch_at_a_time(shop):
    still = [
        await shop.pay.execute(
            shop.alpha.collector, f"slow-{n}", shop.payment(amount=100, method="pm_card_processing")
        )
        for n in range(3)
    ]
    shop.gateway.failing = True
    unanswered = await shop.pay.execute(shop.alpha.collector, "lost", shop.payment(amount=100))
    shop.gateway.failing = False

    class StillProcessing(CountingGateway):
        async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
            return ChargeResult(outcome=ChargeOutcome.PROCESSING, reference=lookup.reference)

    world = shop.world
    recovery = SettlePendingPayments(
        world.uow, world.clock, shop.cache, StillProcessing(), world.telemetry
    )
    world.clock.advance(timedelta(minutes=10))
    # The older three, whose banks have not answered yet, fill the first two batches.
    assert await recovery.execute(batch=2) == 1
    statuses = {p.id: p.status for p in world.store.payments.values()}
    assert statuses == {
        **{p.payment.id: PaymentStatus.PENDING for p in still},
        unanswered.payment.id: PaymentStatus.COMPLETED,
    }


async def test_settling_a_payment_days_later_leaves_its_reused_key_to_the_new_request(shop):
    world = shop.world
    old = await shop.pay.execute(
        shop.alpha.collector, "k", shop.payment(amount=1_000, method="pm_card_processing")
    )
    world.clock.advance(timedelta(hours=25))
    assert await PurgeIdempotencyKeys(world.uow, world.clock).execute() == 1
    new = await shop.pay.execute(shop.alpha.collector, "k", shop.payment(amount=500))
    assert await shop.settle.execute() == 1  # the old one, looked up
    assert world.store.payments[old.payment.id].status is PaymentStatus.COMPLETED
    shop.cache._records.clear()  # the database's record answers alike
    replay = await shop.pay.execute(shop.alpha.collector, "k", shop.payment(amount=500))
    assert replay.replayed and replay.payment == new.payment


async def test_a_payment_whose_key_ran_out_during_a_long_run_is_not_charged_again(shop):
    world = shop.world
    processing = await shop.pay.execute(
        shop.alpha.collector, "slow", shop.payment(amount=100, method="pm_card_processing")
    )
    world.clock.advance(timedelta(minutes=1))
    shop.gateway.failing = True
    unanswered = await shop.pay.execute(shop.alpha.collector, "lost", shop.payment(amount=100))
    shop.gateway.failing = False

    class SlowLookups(CountingGateway):
        async def look_up(self, lookup: ChargeLookup) -> ChargeResult:
            world.clock.advance(timedelta(minutes=5))  # the bank takes its time
            return ChargeResult(outcome=ChargeOutcome.PROCESSING, reference=lookup.reference)

    gateway = SlowLookups()
    recovery = SettlePendingPayments(world.uow, world.clock, shop.cache, gateway, world.telemetry)
    world.clock.advance(timedelta(hours=22, minutes=58))  # the unanswered one: 2 minutes left
    assert await recovery.execute() == 0
    assert gateway.calls == 0  # asked again after 23 hours, its key might charge twice
    assert world.store.payments[unanswered.payment.id].status is PaymentStatus.PENDING
    assert world.store.payments[processing.payment.id].status is PaymentStatus.PENDING


async def test_a_gateway_that_cannot_look_charges_up_leaves_them_to_its_webhooks(shop):
    processing = await shop.pay.execute(
        shop.alpha.collector, "slow", shop.payment(amount=100, method="pm_card_processing")
    )
    shop.gateway.failing = True
    unanswered = await shop.pay.execute(shop.alpha.collector, "lost", shop.payment(amount=100))

    class Older(CountingGateway):
        """A gateway written before lookups: the port's own look_up."""

        look_up = PaymentGateway.look_up

    world = shop.world
    recovery = SettlePendingPayments(world.uow, world.clock, shop.cache, Older(), world.telemetry)
    world.clock.advance(timedelta(minutes=10))
    assert await recovery.execute() == 1
    statuses = {p.id: p.status for p in world.store.payments.values()}
    assert statuses == {
        processing.payment.id: PaymentStatus.PENDING,
        unanswered.payment.id: PaymentStatus.COMPLETED,
    }


async def test_a_cached_answer_is_replayed_only_to_whom_the_payment_is_reachable(shop):
    paid = await shop.pay.execute(shop.alpha.collector, "k", shop.payment())
    assert await shop.cache.get(shop.alpha.admin.agency_id, "k") is not None
    with pytest.raises(PermissionDenied):
        await shop.pay.execute(shop.alpha.readonly, "k", shop.payment())
    moved = await shop.world.account(
        shop.alpha.admin, external_id="A-2", collector=shop.alpha.colleague
    )
    theirs = await shop.pay.execute(
        shop.alpha.colleague, "theirs", shop.payment(account_id=moved.id)
    )
    with pytest.raises(NotFound):
        await shop.pay.execute(shop.alpha.collector, "theirs", shop.payment(account_id=moved.id))
    for actor, key, payment in [
        (shop.alpha.collector, "k", paid.payment),
        (shop.alpha.admin, "theirs", theirs.payment),
    ]:
        again = await shop.pay.execute(actor, key, shop.payment(account_id=payment.account_id))
        assert again.replayed and again.payment == payment


async def test_recovery_stops_asking_before_the_gateway_may_forget_the_key(shop):
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    shop.gateway.failing = True
    payment = await shop.pay.execute(shop.alpha.collector, "old", shop.payment())
    refund, refunds = refunds_of(shop)
    await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    shop.gateway.failing = False
    calls = shop.gateway.calls
    shop.world.clock.advance(timedelta(hours=23, minutes=1))
    # Asked again, the gateway might no longer know the key, and charge or refund twice.
    assert (await shop.settle.execute(), await refunds.execute()) == (0, 0)
    assert shop.gateway.calls == calls
    assert shop.world.store.payments[payment.payment.id].status is PaymentStatus.PENDING


async def test_the_payment_that_paid_the_account_in_full_replays_from_the_database(shop):
    paid = await shop.pay.execute(shop.alpha.collector, "all", shop.payment(amount=10_000))
    world = shop.world
    uncached = MakePayment(  # a process without the cache (Redis down, or restarted)
        world.uow, world.clock, InMemoryIdempotencyCache(world.clock), shop.gateway, world.telemetry
    )
    again = await uncached.execute(shop.alpha.collector, "all", shop.payment(amount=10_000))
    assert again.replayed and again.payment == paid.payment
    with pytest.raises(Conflict, match="paid_in_full account takes no payments"):
        await uncached.execute(shop.alpha.collector, "new", shop.payment(amount=10_000))
    with pytest.raises(ValidationFailed):  # another body under the key
        await uncached.execute(shop.alpha.collector, "all", shop.payment(amount=9_000))


async def test_a_payment_settled_elsewhere_is_replayed_as_settled(shop):
    """The cache holds only answers nothing changes any more: a payment answered pending
    is replayed as the database has it once another process (the worker, with its own
    cache, or whose put was lost) settled it."""
    world, agency = shop.world, shop.alpha.admin.agency_id
    body = shop.payment(method="pm_card_processing")
    pending = await shop.pay.execute(shop.alpha.collector, "k", body)
    worker = Settlement(
        InMemoryUnitOfWork(world.store),
        world.clock,
        InMemoryIdempotencyCache(world.clock),
        world.telemetry,
    )
    reference = pending.payment.gateway_reference
    completed = ChargeResult(outcome=ChargeOutcome.SUCCEEDED, reference=reference)
    await worker.settle(Actor.system(agency), pending.payment.id, completed)

    again = await shop.pay.execute(shop.alpha.collector, "k", body)

    assert again.replayed and again.outcome is PaymentOutcome.COMPLETED
    assert again.payment.status is PaymentStatus.COMPLETED
    # A pending answer that an earlier release put in the cache is not trusted either.
    stored = world.store.idempotency[(agency, "k")]
    stale = msgspec.structs.replace(
        stored, outcome="pending", response=msgspec.to_builtins(pending.payment)
    )
    await shop.cache.put(stale)
    from_db = await shop.pay.execute(shop.alpha.collector, "k", body)
    assert from_db.outcome is PaymentOutcome.COMPLETED and from_db.payment == again.payment


async def test_a_refund_that_failed_later_is_replayed_as_failed(shop):
    """A completed refund may still fail (``refund.failed``): its answer is not cached,
    so a replay tells of the failure even when the worker's put of it was lost."""
    world, agency = shop.world, shop.alpha.admin.agency_id
    refund, _ = refunds_of(shop)
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    done = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())
    assert done.refund.status is RefundStatus.COMPLETED
    async with InMemoryUnitOfWork(world.store) as uow:  # the webhook, its put lost
        payment = await uow.payments.lock(paid.id)
        now = world.clock.now()
        await fail_refund(uow, Actor.system(agency), payment, done.refund, now, now)
        await uow.commit()

    again = await refund.execute(shop.alpha.admin, "r", paid.id, NewRefund())

    assert again.replayed and again.refund.status is RefundStatus.FAILED
    assert again.payment.refunded_amount == 0


async def test_a_collector_has_their_payment_replayed_after_the_account_moved_cached_or_not(shop):
    """A replay is the same with the cache or without it (Redis down, another process):
    the user who made the payment has it replayed though the account has since gone to
    another collector, and anything else under their hand is out of reach alike."""
    world = shop.world
    paid = await shop.pay.execute(shop.alpha.collector, "k", shop.payment())
    await world.use(AssignCollector).execute(
        shop.alpha.admin, shop.account.id, shop.alpha.colleague.user_id
    )
    await shop.pay.execute(shop.alpha.colleague, "theirs", shop.payment(amount=100))
    uncached = MakePayment(
        world.uow, world.clock, InMemoryIdempotencyCache(world.clock), shop.gateway, world.telemetry
    )
    for pay in (shop.pay, uncached):
        again = await pay.execute(shop.alpha.collector, "k", shop.payment())
        assert again.replayed and again.payment == paid.payment
        with pytest.raises(NotFound):
            await pay.execute(shop.alpha.collector, "theirs", shop.payment(amount=100))
        with pytest.raises(NotFound):
            await pay.execute(shop.alpha.collector, "new", shop.payment())
    assert shop.gateway.calls == 2


class StuckUnderTheirKeys(CountingGateway):
    """A gateway that repeats a stored error under some refunds' keys (as Stripe replays a
    500 under its key), and answers the others."""

    def __init__(self, stuck: set[str]) -> None:
        super().__init__()
        self.stuck = stuck
        self.asked: list[str] = []

    async def refund(self, request: RefundRequest) -> RefundResult:
        key = request.idempotency_key.split(":")[1]
        self.asked.append(key)
        if key in self.stuck or self.failing:
            raise GatewayUnavailable("the stored 500 under this key")
        return await super().refund(request)


async def test_refund_recovery_goes_through_every_stuck_refund_a_batch_at_a_time(shop):
    gateway = StuckUnderTheirKeys({"r0", "r1"})
    refund, recovery = refunds_of(shop, gateway)
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment(amount=3_000))).payment
    gateway.failing = True
    for n in range(3):
        await refund.execute(shop.alpha.admin, f"r{n}", paid.id, NewRefund(amount=1_000))
    gateway.failing = False
    shop.world.clock.advance(timedelta(minutes=10))

    # The two oldest, which the gateway still gives no answer for, fill the first batch.
    assert await recovery.execute(batch=2) == 1

    statuses = {r.idempotency_key: r.status for r in await stored_refunds(shop, paid.id)}
    assert statuses == {
        "r0": RefundStatus.PENDING,
        "r1": RefundStatus.PENDING,
        "r2": RefundStatus.COMPLETED,
    }
    assert await shop.balance() == 7_000 + 1_000


async def test_a_refund_whose_key_ran_out_during_a_long_run_is_not_asked_again(shop):
    world = shop.world

    class Slow(StuckUnderTheirKeys):
        async def refund(self, request: RefundRequest) -> RefundResult:
            if not self.failing:
                world.clock.advance(timedelta(minutes=5))  # the gateway takes its time
            return await super().refund(request)

    gateway = Slow({"older"})
    refund, recovery = refunds_of(shop, gateway)
    paid = (await shop.pay.execute(shop.alpha.admin, "p", shop.payment())).payment
    gateway.failing = True
    await refund.execute(shop.alpha.admin, "older", paid.id, NewRefund(amount=1_000))
    world.clock.advance(timedelta(minutes=1))
    await refund.execute(shop.alpha.admin, "later", paid.id, NewRefund(amount=1_000))
    gateway.failing = False
    gateway.asked.clear()
    world.clock.advance(timedelta(hours=22, minutes=57))  # 'later': 3 minutes left

    assert await recovery.execute() == 0

    assert gateway.asked == ["older"]  # asked again after 23 hours, 'later' might refund twice


async def test_a_key_freed_while_the_payment_opened_is_answered_as_in_flight(shop, monkeypatch):
    """A claim lost to a request that freed the key before its record could be read (on
    PostgreSQL, tests/contract) is that request's key in flight, not a refused hold."""

    async def lost_to_a_freed_key(self, opening: Opening) -> Opened:
        return Opened(key_taken=True)

    monkeypatch.setattr(PaymentSteps, "open", lost_to_a_freed_key)
    with pytest.raises(Conflict, match="still being processed"):
        await shop.pay.execute(shop.alpha.collector, "k", shop.payment())
    assert shop.world.telemetry.conflicts == {("payment", "in_flight"): 1}
    assert await shop.balance() == 10_000
    assert shop.gateway.calls == 0


class AskedByRecoveryThenBreakerOpen(SettledDuringTheCharge):
    """The recovery task asks the gateway about the payment (its request hung past the
    task's wait) and applies the answer, before the request's own call finds the breaker
    open."""

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        result = await CountingGateway.charge(self, request)
        await self._settlement.settle(self._actor, request.payment_id, result)
        raise GatewayUnavailable("circuit open", request_sent=False)


@pytest.mark.parametrize(
    ("method", "outcome"),
    [("pm_card_visa", PaymentOutcome.COMPLETED), ("pm_card_processing", PaymentOutcome.PENDING)],
)
async def test_an_open_breaker_cancels_no_payment_the_recovery_reached_the_gateway_about(
    shop, method, outcome
):
    world = shop.world
    recovery = Settlement(InMemoryUnitOfWork(world.store), world.clock, shop.cache, world.telemetry)
    gateway = AskedByRecoveryThenBreakerOpen(recovery, Actor.system(shop.alpha.admin.agency_id))
    pay = MakePayment(world.uow, world.clock, shop.cache, gateway, world.telemetry)

    result = await pay.execute(shop.alpha.collector, "k", shop.payment(method=method))

    assert result.outcome is outcome
    assert result.payment == world.store.payments[result.payment.id]
    assert result.payment.gateway_reference is not None
    assert await shop.balance() == 7_500  # the hold kept
    again = await pay.execute(shop.alpha.collector, "k", shop.payment(method=method))
    assert again.replayed and again.payment == result.payment  # the key kept
