"""Balances, payments and idempotency records: every adapter, concurrency included."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import event

from debtflow_adapters.persistence import SqlUnitOfWork, psycopg_payments
from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.debtor import ContactPreferences, Debtor
from debtflow_core.domain.gateway_event import GatewayEvent, GatewayEventType
from debtflow_core.domain.payment import Payment, PaymentStatus, Refund, RefundStatus
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.domain.user import Role, User
from debtflow_core.ports.audit_log import AuditQuery
from debtflow_core.ports.idempotency import IdempotencyRecord, IdempotencyState
from debtflow_core.ports.payments import (
    Opened,
    Opening,
    PaymentPosition,
    PaymentQuery,
    RefundPosition,
    Settling,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture
async def ledger(uow_factory):
    agency = Agency(id=uuid.uuid4(), slug="alpha", name="Alpha", created_at=T0)
    collector = User(
        id=uuid.uuid4(),
        agency_id=agency.id,
        email="c@alpha.example",
        full_name="C",
        role=Role.COLLECTOR,
        password_hash="h",
        active=True,
        created_at=T0,
    )
    debtor = Debtor(
        id=uuid.uuid4(),
        agency_id=agency.id,
        external_id=None,
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=None,
        phones=(),
        emails=(),
        address=None,
        contact_preferences=ContactPreferences(),
        created_at=T0,
        updated_at=T0,
    )
    account = Account(
        id=uuid.uuid4(),
        agency_id=agency.id,
        debtor_id=debtor.id,
        external_id="A-1",
        original_creditor="Bank",
        currency="USD",
        placed_balance=1_000,
        current_balance=1_000,
        charge_off_date=None,
        status=AccountStatus.ACTIVE,
        assigned_collector_id=collector.id,
        placed_at=T0,
        updated_at=T0,
    )
    processor = PaymentProcessor(
        id=uuid.uuid4(),
        agency_id=agency.id,
        name="Sandbox",
        kind=ProcessorKind.SANDBOX,
        active=True,
        created_at=T0,
    )
    async with uow_factory() as uow:
        await uow.agencies.add(agency)
        await uow.users.add(collector)
        await uow.debtors.add(debtor)
        await uow.accounts.add(account)
        await uow.payment_processors.add(processor)
        await uow.commit()
    return agency, collector, account, processor


def payment(account: Account, processor: PaymentProcessor, minute: int, **kw) -> Payment:
    fields = dict(
        id=uuid.uuid4(),
        agency_id=account.agency_id,
        account_id=account.id,
        processor_id=processor.id,
        amount=100,
        currency="USD",
        payment_method="pm_card_visa",
        status=PaymentStatus.PENDING,
        idempotency_key=f"k{minute}",
        gateway_reference=None,
        failure_code=None,
        failure_message=None,
        refunded_amount=0,
        created_by=None,
        created_at=T0 + timedelta(minutes=minute),
        updated_at=T0 + timedelta(minutes=minute),
    )
    return Payment(**{**fields, **kw})


async def balance(uow_factory, account: Account) -> int:
    async with uow_factory() as uow:
        return (await uow.accounts.get(account.id)).current_balance


async def test_the_recovery_list_keeps_old_payments_the_gateway_accepted_and_pages(
    uow_factory, ledger
):
    _, _, account, processor = ledger
    forgotten = payment(account, processor, 1)  # too old to ask again under its key
    processing = payment(account, processor, 2, gateway_reference="pi_2")
    recent = payment(account, processor, 30)
    also_processing = payment(account, processor, 31, gateway_reference="pi_31")
    too_new = payment(account, processor, 59)
    done = payment(account, processor, 32, status=PaymentStatus.COMPLETED, gateway_reference="pi_9")
    async with uow_factory() as uow:
        for each in (forgotten, processing, recent, also_processing, too_new, done):
            await uow.payments.add(each)
        await uow.commit()
    before, after = T0 + timedelta(minutes=50), T0 + timedelta(minutes=10)
    async with uow_factory() as uow:
        everything = await uow.payments.pending_since(before, 10, after=after)
        first_page = await uow.payments.pending_since(before, 2, after=after)
        position = PaymentPosition(first_page[-1].created_at, first_page[-1].id)
        second_page = await uow.payments.pending_since(before, 2, after=after, following=position)
    assert everything == [processing, recent, also_processing]
    assert (first_page, second_page) == ([processing, recent], [also_processing])


async def test_balance_adjustments_respect_the_floor_and_roll_back(uow_factory, ledger):
    _, _, account, _ = ledger
    async with uow_factory() as uow:
        assert await uow.accounts.adjust_balance(account.id, -400) == 600
        assert await uow.accounts.adjust_balance(account.id, -601) is None
        assert await uow.accounts.adjust_balance(account.id, -601, floor=None) == -1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.accounts.adjust_balance(account.id, 1) == 0
        assert await uow.accounts.adjust_balance(uuid.uuid4(), 1) is None
    assert await balance(uow_factory, account) == -1  # the last block never committed


async def test_concurrent_adjustments_never_lose_one_nor_cross_the_floor(uow_factory, ledger):
    _, _, account, _ = ledger

    async def take(amount: int) -> int | None:
        async with uow_factory() as uow:
            new = await uow.accounts.adjust_balance(account.id, -amount)
            await asyncio.sleep(0.01)  # hold the row while the others queue
            await uow.commit()
            return new

    results = await asyncio.gather(*(take(70) for _ in range(20)))
    taken = [r for r in results if r is not None]
    assert len(taken) == 14
    assert await balance(uow_factory, account) == 1_000 - 14 * 70 == 20


async def test_payments_round_trip_list_and_pending(uow_factory, ledger):
    agency, collector, account, processor = ledger
    first = payment(account, processor, 1)
    second = payment(
        account, processor, 2, status=PaymentStatus.COMPLETED, gateway_reference="pi_1"
    )
    async with uow_factory() as uow:
        await uow.payments.add(first)
        await uow.payments.add(second)
        await uow.commit()
    completed = msgspec.structs.replace(
        first,
        status=PaymentStatus.FAILED,
        failure_code="card_declined",
        failure_message="no",
        gateway_reference="pi_0",
        updated_at=T0 + timedelta(minutes=5),
    )
    refund = Refund(
        id=uuid.uuid4(),
        agency_id=agency.id,
        payment_id=second.id,
        amount=40,
        status=RefundStatus.COMPLETED,
        gateway_reference="re_1",
        idempotency_key=None,
        created_by=None,
        created_at=T0 + timedelta(minutes=9),
        completed_at=T0 + timedelta(minutes=9),
    )
    async with uow_factory() as uow:
        assert await uow.payments.get(first.id) == first
        assert await uow.payments.pending_since(T0 + timedelta(minutes=3), 10, after=T0) == [first]
        assert (
            await uow.payments.pending_since(T0 + timedelta(minutes=3), 10, after=first.created_at)
            == []
        )
        await uow.payments.update(completed)
        await uow.payments.add_refund(refund)
        await uow.commit()

    async def ids(**kw) -> list[uuid.UUID]:
        async with uow_factory() as uow:
            found = await uow.payments.list(PaymentQuery(agency_id=agency.id, **kw))
        return [p.id for p in found]

    async with uow_factory() as uow:
        assert await uow.payments.get(first.id) == completed
        assert await uow.payments.pending_since(T0 + timedelta(hours=1), 10, after=T0) == []
        assert await uow.payments.refunds(second.id) == [refund]
    assert await ids() == [second.id, first.id]
    assert await ids(status=PaymentStatus.FAILED) == [first.id]
    assert await ids(account_id=uuid.uuid4()) == []
    assert await ids(collector_id=collector.id) == [second.id, first.id]
    assert await ids(collector_id=uuid.uuid4()) == []
    assert await ids(after=PaymentPosition(second.created_at, second.id)) == [first.id]


async def test_a_pending_refund_is_completed_or_removed(uow_factory, ledger):
    agency, _, account, processor = ledger
    paid = payment(account, processor, 1, status=PaymentStatus.COMPLETED, gateway_reference="pi_1")
    async with uow_factory() as uow:
        await uow.payments.add(paid)
        await uow.commit()

    def pending(minute: int) -> Refund:
        return Refund(
            id=uuid.uuid4(),
            agency_id=agency.id,
            payment_id=paid.id,
            amount=10,
            status=RefundStatus.PENDING,
            gateway_reference=None,
            idempotency_key=f"r{minute}",
            created_by=None,
            created_at=T0 + timedelta(minutes=minute),
            completed_at=None,
        )

    first, second, third = pending(1), pending(2), pending(3)
    async with uow_factory() as uow:
        for refund in (first, second, third):
            await uow.payments.add_refund(refund)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.pending_refunds(T0 + timedelta(minutes=3), 10, after=T0) == [
            first,
            second,
        ]
        assert await uow.payments.pending_refunds(
            T0 + timedelta(minutes=3), 10, after=first.created_at
        ) == [second]
        assert await uow.payments.pending_refunds(T0 + timedelta(hours=1), 1, after=T0) == [first]
        position = RefundPosition(first.created_at, first.id)
        assert await uow.payments.pending_refunds(
            T0 + timedelta(hours=1), 1, after=T0, following=position
        ) == [second]
        await uow.payments.complete_refund(first.id, "re_1", T0 + timedelta(hours=2))
        await uow.payments.remove_refund(second.id)
        await uow.commit()
    completed = msgspec.structs.replace(
        first,
        status=RefundStatus.COMPLETED,
        gateway_reference="re_1",
        completed_at=T0 + timedelta(hours=2),
    )
    async with uow_factory() as uow:
        assert await uow.payments.refund(first.id) == completed
        assert await uow.payments.refund(second.id) is None
        await uow.payments.remove_refund(first.id)  # only a pending refund is removed
        assert await uow.payments.refunds(paid.id) == [completed, third]
        assert await uow.payments.pending_refunds(T0 + timedelta(hours=1), 10, after=T0) == [third]
        await uow.payments.remove_refund(third.id)  # not committed: kept
    async with uow_factory() as uow:
        assert await uow.payments.refunds(paid.id) == [completed, third]
        await uow.payments.fail_refund(first.id, "re_1", T0 + timedelta(days=3))
        await uow.payments.fail_refund(third.id, "re_3", T0 + timedelta(days=4))
        await uow.commit()
    async with uow_factory() as uow:
        failed = [
            (r.status, r.gateway_reference, r.failed_at)
            for r in await uow.payments.refunds(paid.id)
        ]
        assert failed == [
            (RefundStatus.FAILED, "re_1", T0 + timedelta(days=3)),
            (RefundStatus.FAILED, "re_3", T0 + timedelta(days=4)),
        ]
        assert await uow.payments.pending_refunds(T0 + timedelta(hours=1), 10, after=T0) == []


def record(agency: Agency, key: str, **kw) -> IdempotencyRecord:
    fields = dict(
        agency_id=agency.id,
        key=key,
        fingerprint="a" * 64,
        state=IdempotencyState.IN_FLIGHT,
        outcome=None,
        response=None,
        created_at=T0,
        expires_at=T0 + timedelta(hours=24),
    )
    return IdempotencyRecord(**{**fields, **kw})


async def test_idempotency_claims_finish_release_and_purge(uow_factory, ledger):
    agency, *_ = ledger
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(record(agency, "k1")) is None
        assert await uow.idempotency.claim(record(agency, "old", expires_at=T0)) is None
        await uow.commit()
    async with uow_factory() as uow:
        existing = await uow.idempotency.claim(record(agency, "k1", fingerprint="b" * 64))
        assert existing == record(agency, "k1")
        done = await uow.idempotency.finish(agency.id, "k1", "completed", {"id": "x", "n": 1})
        assert (done.state, done.outcome, done.response) == (
            IdempotencyState.DONE,
            "completed",
            {"id": "x", "n": 1},
        )
        assert await uow.idempotency.finish(agency.id, "nope", "completed", {}) is None
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.idempotency.claim(record(agency, "k1"))).state is IdempotencyState.DONE
        await uow.idempotency.release(agency.id, "k1")
        assert await uow.idempotency.purge_expired(T0 + timedelta(hours=1)) == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(record(agency, "k1")) is None
        assert await uow.idempotency.claim(record(agency, "old")) is None


async def test_a_rolled_back_claim_frees_the_key(uow_factory, ledger):
    agency, *_ = ledger
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(record(agency, "k")) is None
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(record(agency, "k")) is None


async def test_of_concurrent_claims_of_one_key_exactly_one_wins(uow_factory, ledger):
    agency, *_ = ledger

    async def claim() -> bool:
        async with uow_factory() as uow:
            won = await uow.idempotency.claim(record(agency, "same")) is None
            await asyncio.sleep(0.02)
            await uow.commit()
            return won

    assert sorted(await asyncio.gather(*(claim() for _ in range(5)))) == [False] * 4 + [True]


async def test_refund_reservations_stay_within_the_paid_amount(uow_factory, ledger):
    _, _, account, processor = ledger
    paid = payment(account, processor, 1, status=PaymentStatus.COMPLETED, amount=1_000)
    pending = payment(account, processor, 2)
    async with uow_factory() as uow:
        await uow.payments.add(paid)
        await uow.payments.add(pending)
        await uow.commit()

    async def reserve(amount: int) -> bool:
        async with uow_factory() as uow:
            done = await uow.payments.reserve_refund(paid.id, amount)
            await asyncio.sleep(0.01)
            await uow.commit()
            return done

    results = await asyncio.gather(*(reserve(300) for _ in range(6)))
    assert results.count(True) == 3
    async with uow_factory() as uow:
        assert (await uow.payments.get(paid.id)).refunded_amount == 900
        assert not await uow.payments.reserve_refund(paid.id, 101)
        assert not await uow.payments.reserve_refund(paid.id, -901)
        assert await uow.payments.reserve_refund(paid.id, -900)
        assert not await uow.payments.reserve_refund(pending.id, 1)
        assert not await uow.payments.reserve_refund(uuid.uuid4(), 1)
    async with uow_factory() as uow:  # rolled back
        assert (await uow.payments.get(paid.id)).refunded_amount == 900


async def test_gateway_events_are_recorded_once_and_marked_processed(uow_factory, ledger):
    event = GatewayEvent(
        id="evt_1",
        type=GatewayEventType.CHARGE_REFUNDED,
        payment_id=uuid.uuid4(),
        reference="ch_1",
        amount_refunded=500,
        received_at=T0,
    )
    async with uow_factory() as uow:
        assert await uow.gateway_events.record(event)
        assert not await uow.gateway_events.record(event)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.gateway_events.get("evt_1") == event
        assert await uow.gateway_events.get("evt_2") is None
        marked = await uow.gateway_events.mark_processed("evt_1", "refunded", T0 + SECOND)
        assert await uow.gateway_events.mark_processed("evt_2", "refunded", T0) is None
        await uow.commit()
    async with uow_factory() as uow:  # the same event, processed again at the same time
        again = await uow.gateway_events.mark_processed("evt_1", "ignored", T0 + 2 * SECOND)
        await uow.commit()
    async with uow_factory() as uow:
        done = await uow.gateway_events.get("evt_1")
    assert (marked, again) == ("refunded", "refunded")
    assert (done.outcome, done.processed_at) == ("refunded", T0 + SECOND)


async def test_a_failed_refund_event_keeps_its_key_time_payment_and_amount(uow_factory, ledger):
    event = GatewayEvent(
        id="evt_9",
        type=GatewayEventType.REFUND_FAILED,
        payment_id=uuid.uuid4(),
        reference="re_1",
        refund_key=f"{uuid.uuid4()}:r-1:{uuid.uuid4()}",
        decline_code="expired_or_canceled_card",
        payment_reference="pi_1",
        refund_amount=700,
        received_at=T0,
        created_at=T0 - SECOND,
    )
    async with uow_factory() as uow:
        assert await uow.gateway_events.record(event)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.gateway_events.get("evt_9") == event


async def test_unapplied_events_are_listed_oldest_first_within_their_window(uow_factory, ledger):
    def received(id_: str, seconds: int) -> GatewayEvent:
        return GatewayEvent(
            id=id_,
            type=GatewayEventType.PAYMENT_SUCCEEDED,
            payment_id=uuid.uuid4(),
            reference=None,
            received_at=T0 + seconds * SECOND,
        )

    async with uow_factory() as uow:
        for id_, seconds in [("evt_c", 3), ("evt_a", 1), ("evt_b", 2), ("evt_old", 0)]:
            await uow.gateway_events.record(received(id_, seconds))
        await uow.gateway_events.record(received("evt_late", 9))
        await uow.gateway_events.mark_processed("evt_b", "completed", T0 + 5 * SECOND)
        await uow.commit()

    async def unapplied(limit: int = 10) -> list[str]:
        async with uow_factory() as uow:
            return await uow.gateway_events.unapplied(
                received_before=T0 + 5 * SECOND, received_after=T0, limit=limit
            )

    assert await unapplied() == ["evt_a", "evt_c"]
    assert await unapplied(limit=1) == ["evt_a"]


async def test_a_payment_is_found_by_its_gateway_reference(uow_factory, ledger):
    _, _, account, processor = ledger
    paid = payment(account, processor, 1, status=PaymentStatus.COMPLETED, gateway_reference="pi_1")
    other = payment(account, processor, 2, gateway_reference="pi_2")
    async with uow_factory() as uow:
        await uow.payments.add(paid)
        await uow.payments.add(other)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.get_by_reference("pi_1") == paid
        assert await uow.payments.get_by_reference("pi_2") == other
        assert await uow.payments.get_by_reference("pi_3") is None


async def test_a_locked_payment_reads_like_get(uow_factory, ledger):
    """Taking turns under the lock is tested where it matters, on PostgreSQL, in
    tests/integration/api/test_webhooks_api.py (events applied at the same moment)."""
    _, _, account, processor = ledger
    made = payment(account, processor, 1)
    async with uow_factory() as uow:
        await uow.payments.add(made)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.lock(made.id) == made
        assert await uow.payments.lock(uuid.uuid4()) is None


# A payment's phases in one call each (payable, open, settle): all or nothing, concurrent.


def opening(payment_: Payment, *, floor: int | None = 0, key: str | None = None) -> Opening:
    key = key or payment_.idempotency_key
    return Opening(
        claim=IdempotencyRecord(
            agency_id=payment_.agency_id,
            key=key,
            fingerprint="a" * 64,
            state=IdempotencyState.IN_FLIGHT,
            outcome=None,
            response=None,
            created_at=T0,
            expires_at=T0 + timedelta(hours=24),
        ),
        payment=msgspec.structs.replace(payment_, idempotency_key=key),
        audit=audit_entry(
            Actor.system(payment_.agency_id),
            "payment.created",
            entity_id=payment_.id,
            before=None,
            after=payment_,
            at=payment_.created_at,
        ),
        floor=floor,
    )


def settling(before: Payment, after: Payment) -> Settling:
    return Settling(
        before=before,
        after=after,
        audit=audit_entry(
            Actor.system(before.agency_id),
            f"payment.{after.status}",
            entity_id=before.id,
            before=before,
            after=after,
            at=after.updated_at,
        ),
        outcome=str(after.status),
        response=msgspec.to_builtins(after),
    )


async def audit_actions(uow_factory, agency_id: uuid.UUID, payment_id: uuid.UUID) -> list[str]:
    async with uow_factory() as uow:
        entries = await uow.audit_log.query(AuditQuery(agency_id=agency_id, entity_id=payment_id))
    return sorted(entry.action for entry in entries)


async def test_payable_reads_the_account_its_agency_and_the_processor(uow_factory, ledger):
    agency, _, account, processor = ledger
    async with uow_factory() as uow:
        payable = await uow.payments.payable(account.id, processor.id)
        assert payable is not None
        assert (payable.account, payable.allow_overpayment, payable.processor) == (
            account,
            agency.allow_overpayment,
            processor,
        )
        assert (await uow.payments.payable(account.id, uuid.uuid4())).processor is None
        assert await uow.payments.payable(uuid.uuid4(), processor.id) is None


async def test_open_claims_holds_writes_the_payment_with_its_audit_and_commits(uow_factory, ledger):
    agency, _, account, processor = ledger
    pending = payment(account, processor, 1, amount=300)
    async with uow_factory() as uow:
        opened = await uow.payments.open(opening(pending))
        assert (opened.existing, opened.balance) == (None, 700)
    async with uow_factory() as uow:
        assert await uow.payments.get(pending.id) == pending
        claimed = await uow.idempotency.claim(record(agency, pending.idempotency_key))
        assert claimed is not None and claimed.state is IdempotencyState.IN_FLIGHT
    assert await balance(uow_factory, account) == 700
    assert await audit_actions(uow_factory, agency.id, pending.id) == ["payment.created"]


async def test_a_taken_key_or_a_refused_hold_changes_nothing(uow_factory, ledger):
    agency, _, account, processor = ledger
    first = payment(account, processor, 1, amount=300)
    async with uow_factory() as uow:
        await uow.payments.open(opening(first))
    again = payment(account, processor, 2, amount=300, idempotency_key=first.idempotency_key)
    too_much = payment(account, processor, 3, amount=701)
    async with uow_factory() as uow:
        lost = await uow.payments.open(opening(again))
        assert lost.balance is None and lost.existing is not None
        assert lost.existing.key == first.idempotency_key
        refused = await uow.payments.open(opening(too_much))
        assert refused == Opened()  # neither the key's record nor key_taken
        # A refused hold under a taken key answers with the key's record.
        taken = await uow.payments.open(opening(too_much, key=first.idempotency_key))
        assert taken.existing is not None and taken.balance is None
    async with uow_factory() as uow:
        assert await uow.payments.get(again.id) is None
        assert await uow.payments.get(too_much.id) is None
        assert await uow.idempotency.claim(record(agency, too_much.idempotency_key)) is None
    assert await balance(uow_factory, account) == 700


async def test_open_without_floor_overdraws(uow_factory, ledger):
    agency, _, account, processor = ledger
    over = payment(account, processor, 1, amount=1_500)
    async with uow_factory() as uow:
        assert (await uow.payments.open(opening(over, floor=None))).balance == -500
    assert await balance(uow_factory, account) == -500
    assert await audit_actions(uow_factory, agency.id, over.id) == ["payment.created"]


async def test_open_commits_what_the_unit_of_work_wrote_before_it(uow_factory, ledger):
    _, _, account, processor = ledger
    pending = payment(account, processor, 1, amount=300)
    earlier = Agency(id=uuid.uuid4(), slug="earlier", name="E", created_at=T0)
    async with uow_factory() as uow:
        await uow.agencies.add(earlier)
        await uow.payments.open(opening(pending))
    async with uow_factory() as uow:
        assert await uow.agencies.get_by_slug("earlier") == earlier
        assert await uow.payments.get(pending.id) == pending


async def test_an_open_that_wrote_nothing_commits_nothing(uow_factory, ledger):
    _, _, account, processor = ledger
    earlier = Agency(id=uuid.uuid4(), slug="earlier", name="E", created_at=T0)
    async with uow_factory() as uow:
        await uow.agencies.add(earlier)
        refused = await uow.payments.open(opening(payment(account, processor, 1, amount=1_001)))
        assert refused.balance is None
    async with uow_factory() as uow:
        assert await uow.agencies.get_by_slug("earlier") is None


async def test_concurrent_openings_never_cross_the_floor_and_claim_once(uow_factory, ledger):
    _, _, account, processor = ledger

    async def pay(minute: int, key: str) -> bool:
        async with uow_factory() as uow:
            opened = await uow.payments.open(
                opening(payment(account, processor, minute, amount=70), key=key)
            )
            return opened.balance is not None

    same = await asyncio.gather(*(pay(n, "same") for n in range(5)))
    assert sorted(same) == [False] * 4 + [True]
    distinct = await asyncio.gather(*(pay(10 + n, f"k{n}") for n in range(20)))
    assert sum(distinct) == 13
    assert await balance(uow_factory, account) == 1_000 - 14 * 70


async def test_settle_saves_once_what_is_still_pending(uow_factory, ledger):
    agency, _, account, processor = ledger
    pending = payment(account, processor, 1, amount=300)
    async with uow_factory() as uow:
        await uow.payments.open(opening(pending))
    completed = pending.complete("pi_1", at=T0)
    async with uow_factory() as uow:
        finished = await uow.payments.settle(settling(pending, completed))
        assert finished is not None
        assert (finished.state, finished.outcome) == (IdempotencyState.DONE, "completed")
        assert finished.response == msgspec.to_builtins(completed)
    again = pending.complete("pi_2", at=T0)
    async with uow_factory() as uow:
        assert await uow.payments.settle(settling(pending, again)) is None
    async with uow_factory() as uow:
        assert await uow.payments.get(pending.id) == completed
        stored = await uow.idempotency.claim(record(agency, pending.idempotency_key))
        assert stored is not None and stored.outcome == "completed"
    assert await balance(uow_factory, account) == 700
    assert await audit_actions(uow_factory, agency.id, pending.id) == [
        "payment.completed",
        "payment.created",
    ]


async def test_settle_refuses_a_payment_changed_since_or_without_its_key(uow_factory, ledger):
    agency, _, account, processor = ledger
    pending = payment(account, processor, 1)
    async with uow_factory() as uow:
        await uow.payments.open(opening(pending))
        processing = msgspec.structs.replace(pending, gateway_reference="pi_1")
        await uow.payments.update(processing)
        await uow.commit()
    completed = pending.complete("pi_1", at=T0)
    async with uow_factory() as uow:
        assert await uow.payments.settle(settling(pending, completed)) is None
        await uow.idempotency.release(agency.id, pending.idempotency_key)
        assert await uow.payments.settle(settling(processing, completed)) is None
    async with uow_factory() as uow:
        assert await uow.payments.settle(settling(processing, completed)) is not None
    async with uow_factory() as uow:
        assert await uow.payments.get(pending.id) == completed
    assert await balance(uow_factory, account) == 900


async def test_of_concurrent_settlements_one_saves(uow_factory, ledger):
    agency, _, account, processor = ledger
    pending = payment(account, processor, 1)
    async with uow_factory() as uow:
        await uow.payments.open(opening(pending))

    async def settle(reference: str) -> bool:
        completed = pending.complete(reference, at=T0)
        async with uow_factory() as uow:
            saved = await uow.payments.settle(settling(pending, completed))
            return saved is not None

    assert sum(await asyncio.gather(*(settle(f"pi_{n}") for n in range(5)))) == 1
    assert await balance(uow_factory, account) == 900
    assert await audit_actions(uow_factory, agency.id, pending.id) == [
        "payment.completed",
        "payment.created",
    ]


@pytest.fixture
def round_trips(postgres_engine, tmp_path):
    """How many round trips the connections the test checks out of ``postgres_engine``
    made so far: what libpq's trace shows them send that the server answers when done (a
    simple query, or the Sync ending a batch of the extended protocol)."""
    path = tmp_path / "libpq.trace"
    traced = []

    def trace(_dbapi_connection, _record, proxy) -> None:
        proxy.driver_connection.pgconn.trace(trace_file.fileno())
        traced.append(proxy.driver_connection)

    def count() -> int:
        # A line: time, F (sent) or B (received), length, message, its details.
        sent = (line.split("\t")[1:4:2] for line in path.read_text().splitlines())
        return sum(fields in (["F", "Query"], ["F", "Sync"]) for fields in sent)

    with path.open("w") as trace_file:
        event.listen(postgres_engine.sync_engine, "checkout", trace)
        yield count
        event.remove(postgres_engine.sync_engine, "checkout", trace)
        for connection in traced:
            if not connection.closed:
                connection.pgconn.untrace()


@pytest.mark.parametrize(
    "uow_factory", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_on_postgresql_a_phase_is_one_round_trip(
    uow_factory, ledger, round_trips, postgres_engine
):
    # A phase's statement is a transaction of its own: no BEGIN, no COMMIT. The first
    # payment on a connection also prepares the statements, a round trip each; the pool
    # is emptied so that no earlier test's connection has prepared them already.
    _, _, account, processor = ledger
    await postgres_engine.dispose()
    paid = []

    async def pay(minute: int) -> tuple[int, int]:
        pending = payment(account, processor, minute, amount=300)
        completed = msgspec.structs.replace(
            pending, status=PaymentStatus.COMPLETED, gateway_reference="ch_1", updated_at=T0
        )
        before = round_trips()
        async with uow_factory() as uow:
            assert (await uow.payments.open(opening(pending))).balance is not None
        opened = round_trips()
        async with uow_factory() as uow:
            assert await uow.payments.settle(settling(pending, completed)) is not None
        paid.append(completed)
        return opened - before, round_trips() - opened

    assert await pay(1) == (2, 2)
    assert await pay(2) == (1, 1)
    async with uow_factory() as uow:
        assert [await uow.payments.get(each.id) for each in paid] == paid


@pytest.mark.parametrize(
    "uow_factory", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_after_a_phase_the_connection_begins_its_transactions_again(
    uow_factory, ledger, postgres_engine
):
    # The phase began its transaction by hand, out of psycopg's autocommit mode; a later
    # block on the same connection must be a transaction again, not statement by statement.
    _, _, account, processor = ledger
    uow = SqlUnitOfWork(postgres_engine)
    uow.keep_for_next_block()
    async with uow:
        await uow.payments.open(opening(payment(account, processor, 1)))
    async with uow:
        await uow.agencies.add(Agency(id=uuid.uuid4(), slug="never", name="N", created_at=T0))
    async with uow:
        assert await uow.agencies.get_by_slug("never") is None
    assert await balance(uow_factory, account) == 900


@pytest.mark.parametrize(
    "uow_factory", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_on_postgresql_a_claim_lost_to_a_key_freed_meanwhile_is_no_refused_hold(
    uow_factory, ledger, monkeypatch
):
    # PostgreSQL claims in one statement and reads the key's record in another, between
    # which the request holding the key may free it (its payment cancelled). The other
    # stores read the record as they claim, and answer it: in flight.
    agency, _, account, processor = ledger
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(record(agency, "K")) is None
        await uow.commit()
    claimed = psycopg_payments.execute

    async def then_freed(cursor, sql, parameters):
        result = await claimed(cursor, sql, parameters)
        if sql is psycopg_payments._OPEN:
            async with uow_factory() as other:
                await other.idempotency.release(agency.id, "K")
                await other.commit()
        return result

    monkeypatch.setattr(psycopg_payments, "execute", then_freed)
    async with uow_factory() as uow:
        opened = await uow.payments.open(opening(payment(account, processor, 1), key="K"))
    assert opened == Opened(key_taken=True)
    assert await balance(uow_factory, account) == 1_000
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(record(agency, "K")) is None  # nothing kept
