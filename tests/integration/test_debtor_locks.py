"""On PostgreSQL, changes to one debtor take turns: an edit and a cease-communication request
made at the same moment both survive, whichever commits first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_core.actor import Actor
from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.debtor import ContactPreferences
from debtflow_core.use_cases.accounts import NewAccount, PlaceAccount
from debtflow_core.use_cases.activities import NewActivity, RecordActivity
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, DebtorChanges, NewDebtor, UpdateDebtor
from tests.support.row_locks import until_one_waits

pytestmark = pytest.mark.postgres


@pytest.fixture
async def scene(postgres_engine: AsyncEngine):
    clock = FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC), tick=timedelta(seconds=1))
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
    return postgres_engine, clock, admin, account


async def test_an_edit_that_waited_keeps_the_cease_request_committed_first(scene):
    engine, clock, admin, account = scene
    async with SqlUnitOfWork(engine) as holder:
        debtor = await holder.debtors.lock(account.debtor_id)
        edit = asyncio.create_task(
            UpdateDebtor(SqlUnitOfWork(engine), clock).execute(
                admin, account.debtor_id, DebtorChanges(last_name="King")
            )
        )
        await until_one_waits(engine)
        ceased = ContactPreferences(cease_communication=True)
        await holder.debtors.update(msgspec.structs.replace(debtor, contact_preferences=ceased))
        await holder.commit()
    edited = await edit
    assert (edited.last_name, edited.contact_preferences.cease_communication) == ("King", True)


async def test_a_cease_request_that_waited_keeps_the_edit_committed_first(scene):
    engine, clock, admin, account = scene
    async with SqlUnitOfWork(engine) as holder:
        debtor = await holder.debtors.lock(account.debtor_id)
        request = asyncio.create_task(
            RecordActivity(SqlUnitOfWork(engine), clock).execute(
                admin, account.id, NewActivity(type=ActivityType.CEASE_COMMUNICATION)
            )
        )
        await until_one_waits(engine)
        await holder.debtors.update(msgspec.structs.replace(debtor, last_name="King"))
        await holder.commit()
    await request
    async with SqlUnitOfWork(engine) as uow:
        stored = await uow.debtors.get(account.debtor_id)
    assert (stored.last_name, stored.contact_preferences.cease_communication) == ("King", True)
