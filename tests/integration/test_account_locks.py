"""On PostgreSQL, changes to one account take turns: a change that waited for another one
is judged on, and audited from, what the first left, and writes none of it over.

In each test a holder locks the account and changes it; the change under test starts,
queues on the lock (the test waits until PostgreSQL says so), and the holder commits.
Read without the lock, the waiting change would have read the account as it was before
the holder's change and written its own over it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.memory.idempotency_cache import InMemoryIdempotencyCache
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.actor import Actor
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.activity import ActivityType, PromiseToPay
from debtflow_core.domain.payment import PaymentStatus
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.domain.user import Role, User
from debtflow_core.errors import Conflict
from debtflow_core.ports.audit_log import AuditQuery
from debtflow_core.ports.payment_gateway import ChargeRequest, ChargeResult
from debtflow_core.use_cases.accounts import (
    AssignCollector,
    ChangeAccountStatus,
    NewAccount,
    PlaceAccount,
)
from debtflow_core.use_cases.activities import NewActivity, RecordActivity
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.payments import MakePayment, NewPayment
from tests.support.row_locks import until_one_waits

pytestmark = pytest.mark.postgres

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Scene(msgspec.Struct, kw_only=True):
    engine: AsyncEngine
    clock: FixedClock
    admin: Actor
    account: Account


@pytest.fixture
async def scene(postgres_engine: AsyncEngine) -> Scene:
    clock = FixedClock(START, tick=timedelta(seconds=1))
    agency = await CreateAgency(SqlUnitOfWork(postgres_engine), clock).execute(
        NewAgency(slug="alpha", name="Alpha")
    )
    admin = Actor.system(agency.id)
    debtor = await CreateDebtor(SqlUnitOfWork(postgres_engine), clock).execute(
        admin, NewDebtor(first_name="Ada", last_name="Lovelace")
    )
    account = await PlaceAccount(SqlUnitOfWork(postgres_engine), clock).execute(
        admin,
        NewAccount(
            debtor_id=debtor.id,
            external_id="A-1",
            original_creditor="First Bank",
            currency="USD",
            placed_balance=10_000,
        ),
    )
    return Scene(engine=postgres_engine, clock=clock, admin=admin, account=account)


async def stored(scene: Scene) -> Account:
    async with SqlUnitOfWork(scene.engine) as uow:
        account = await uow.accounts.get(scene.account.id)
    assert account is not None
    return account


async def test_a_second_lock_waits_and_reads_what_the_first_committed(scene):
    async with SqlUnitOfWork(scene.engine) as holder:
        locked = await holder.accounts.lock(scene.account.id)

        async def lock_again() -> Account | None:
            async with SqlUnitOfWork(scene.engine) as uow:
                return await uow.accounts.lock(scene.account.id)

        second = asyncio.create_task(lock_again())
        await until_one_waits(scene.engine)
        closed = msgspec.structs.replace(locked, status=AccountStatus.CLOSED)
        await holder.accounts.update(closed)
        await holder.commit()
    assert (await second).status is AccountStatus.CLOSED


async def test_a_status_change_that_waited_is_judged_on_the_status_a_payment_left(scene):
    async with SqlUnitOfWork(scene.engine) as holder:  # as a payment's phase 3 would
        locked = await holder.accounts.lock(scene.account.id)
        change = asyncio.create_task(
            ChangeAccountStatus(SqlUnitOfWork(scene.engine), scene.clock).execute(
                scene.admin, scene.account.id, AccountStatus.DISPUTED
            )
        )
        await until_one_waits(scene.engine)
        await holder.accounts.adjust_balance(scene.account.id, -10_000)
        paid = msgspec.structs.replace(locked, current_balance=0)
        await holder.accounts.update(paid.transition_to(AccountStatus.PAID_IN_FULL, at=START))
        await holder.commit()
    with pytest.raises(Conflict, match="from paid_in_full to disputed"):
        await change
    assert (await stored(scene)).status is AccountStatus.PAID_IN_FULL


async def test_a_status_change_that_waited_is_audited_from_the_status_committed_first(scene):
    async with SqlUnitOfWork(scene.engine) as holder:
        locked = await holder.accounts.lock(scene.account.id)
        change = asyncio.create_task(
            ChangeAccountStatus(SqlUnitOfWork(scene.engine), scene.clock).execute(
                scene.admin, scene.account.id, AccountStatus.CLOSED
            )
        )
        await until_one_waits(scene.engine)
        await holder.accounts.update(locked.transition_to(AccountStatus.DISPUTED, at=START))
        await holder.commit()
    await change
    async with SqlUnitOfWork(scene.engine) as uow:
        entries = await uow.audit_log.query(
            AuditQuery(agency_id=scene.admin.agency_id, entity_id=scene.account.id)
        )
    latest = entries[0]
    assert (latest.action, latest.before, latest.after) == (
        "account.status_changed",
        {"status": "disputed"},
        {"status": "closed"},
    )


async def test_an_assignment_that_waited_keeps_the_status_change_committed_first(scene):
    collector = User(
        id=uuid.uuid4(),
        agency_id=scene.admin.agency_id,
        email="grace@alpha.example",
        full_name="Grace Hopper",
        role=Role.COLLECTOR,
        password_hash="hash",
        active=True,
        created_at=START,
    )
    async with SqlUnitOfWork(scene.engine) as uow:
        await uow.users.add(collector)
        await uow.commit()
    async with SqlUnitOfWork(scene.engine) as holder:
        locked = await holder.accounts.lock(scene.account.id)
        assignment = asyncio.create_task(
            AssignCollector(SqlUnitOfWork(scene.engine), scene.clock).execute(
                scene.admin, scene.account.id, collector.id
            )
        )
        await until_one_waits(scene.engine)
        await holder.accounts.update(locked.transition_to(AccountStatus.DISPUTED, at=START))
        await holder.commit()
    await assignment
    account = await stored(scene)
    assert (account.status, account.assigned_collector_id) == (
        AccountStatus.DISPUTED,
        collector.id,
    )


async def test_a_dispute_that_waited_leaves_an_account_closed_meanwhile_closed(scene):
    async with SqlUnitOfWork(scene.engine) as holder:
        locked = await holder.accounts.lock(scene.account.id)
        dispute = asyncio.create_task(
            RecordActivity(SqlUnitOfWork(scene.engine), scene.clock).execute(
                scene.admin, scene.account.id, NewActivity(type=ActivityType.DISPUTE)
            )
        )
        await until_one_waits(scene.engine)
        await holder.accounts.update(locked.transition_to(AccountStatus.CLOSED, at=START))
        await holder.commit()
    recorded = await dispute
    assert recorded.type is ActivityType.DISPUTE
    assert (await stored(scene)).status is AccountStatus.CLOSED


@pytest.mark.parametrize(
    ("activity", "refusal"),
    [
        (NewActivity(type=ActivityType.CALL), "recalled"),
        (
            NewActivity(
                type=ActivityType.PROMISE_TO_PAY,
                promise=PromiseToPay(amount=100, due_on=date(2026, 2, 1)),
            ),
            "nothing left to promise",
        ),
    ],
    ids=["call", "promise"],
)
async def test_a_contact_or_promise_that_waited_for_a_recall_is_refused(scene, activity, refusal):
    async with SqlUnitOfWork(scene.engine) as holder:
        locked = await holder.accounts.lock(scene.account.id)
        recording = asyncio.create_task(
            RecordActivity(SqlUnitOfWork(scene.engine), scene.clock).execute(
                scene.admin, scene.account.id, activity
            )
        )
        await until_one_waits(scene.engine)
        await holder.accounts.update(locked.transition_to(AccountStatus.RECALLED, at=START))
        await holder.commit()
    with pytest.raises(Conflict, match=refusal):
        await recording


class HeldGateway(SandboxGateway):
    """The sandbox, answering a charge only once the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.charging = asyncio.Event()
        self.answer = asyncio.Event()

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.charging.set()
        await self.answer.wait()
        return await super().charge(request)


async def test_a_payment_completed_while_the_account_was_being_closed_leaves_it_closed(scene):
    processor = PaymentProcessor(
        id=uuid.uuid4(),
        agency_id=scene.admin.agency_id,
        name="Sandbox",
        kind=ProcessorKind.SANDBOX,
        active=True,
        created_at=START,
    )
    async with SqlUnitOfWork(scene.engine) as uow:
        await uow.payment_processors.add(processor)
        await uow.commit()
    gateway = HeldGateway()
    pay = MakePayment(
        SqlUnitOfWork(scene.engine),
        scene.clock,
        InMemoryIdempotencyCache(scene.clock),
        gateway,
        InMemoryTelemetry(),
    )
    payment = asyncio.create_task(
        pay.execute(
            scene.admin,
            "key-1",
            NewPayment(
                account_id=scene.account.id,
                amount=10_000,  # the whole balance: phase 3 would mark it paid in full
                currency="USD",
                processor_id=processor.id,
                payment_method="pm_card_visa",
            ),
        )
    )
    await gateway.charging.wait()  # phase 1 has committed the hold
    async with SqlUnitOfWork(scene.engine) as holder:
        locked = await holder.accounts.lock(scene.account.id)
        gateway.answer.set()
        await until_one_waits(scene.engine)  # phase 3, at the account
        await holder.accounts.update(locked.transition_to(AccountStatus.CLOSED, at=START))
        await holder.commit()
    assert (await payment).payment.status is PaymentStatus.COMPLETED
    account = await stored(scene)
    assert (account.current_balance, account.status) == (0, AccountStatus.CLOSED)
