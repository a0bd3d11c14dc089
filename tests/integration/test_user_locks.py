"""On PostgreSQL, changes to one agency's users take turns: a change that waited for another
one reads the user, and the acting admin, as the first left them.

In each test a first change runs up to its commit and is held there; the change under test
starts, queues on the agency's lock (the test waits until PostgreSQL says so), and the
first commits. Read without the lock, the waiting change would have judged and written the
users as they were before the first change (or assigned an account to a collector just
deactivated). Rows that merely name the agency are added
meanwhile without waiting.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import FastPasswordHasher, FixedClock
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_core.actor import Actor
from debtflow_core.domain.user import Role, User
from debtflow_core.errors import PermissionDenied, ValidationFailed
from debtflow_core.use_cases.accounts import AssignCollector, NewAccount, PlaceAccount
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.users import ChangeUserRole, CreateUser, DeactivateUser, NewUser
from tests.support.row_locks import until_one_waits

pytestmark = pytest.mark.postgres

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class HeldCommit(SqlUnitOfWork):
    """A unit of work whose commit, its changes made, waits until the test lets it."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.committing = asyncio.Event()
        self.release = asyncio.Event()

    async def commit(self) -> None:
        self.committing.set()
        await self.release.wait()
        await super().commit()


class Scene(msgspec.Struct, kw_only=True):
    engine: AsyncEngine
    clock: FixedClock
    first: Actor  # two admins, as signed in
    second: Actor
    collector: Actor


@pytest.fixture
async def scene(postgres_engine: AsyncEngine) -> Scene:
    clock = FixedClock(START, tick=timedelta(seconds=1))
    agency = await CreateAgency(SqlUnitOfWork(postgres_engine), clock).execute(
        NewAgency(slug="alpha", name="Alpha")
    )
    create = CreateUser(SqlUnitOfWork(postgres_engine), clock, FastPasswordHasher())
    actors = {}
    for name, role in [
        ("first", Role.AGENCY_ADMIN),
        ("second", Role.AGENCY_ADMIN),
        ("collector", Role.COLLECTOR),
    ]:
        user = await create.execute(
            Actor.system(agency.id),
            NewUser(
                email=f"{name}@alpha.example",
                full_name=name.title(),
                role=role,
                password="correct horse battery",
            ),
        )
        actors[name] = Actor(user_id=user.id, agency_id=agency.id, role=role)
    return Scene(engine=postgres_engine, clock=clock, **actors)


async def stored(scene: Scene, actor: Actor) -> User:
    async with SqlUnitOfWork(scene.engine) as uow:
        user = await uow.users.get(actor.user_id)
    assert user is not None
    return user


async def test_a_role_change_that_waited_for_a_deactivation_leaves_the_user_deactivated(scene):
    held = HeldCommit(scene.engine)
    deactivation = asyncio.create_task(
        DeactivateUser(held, scene.clock).execute(scene.first, scene.collector.user_id)
    )
    await held.committing.wait()
    change = asyncio.create_task(
        ChangeUserRole(SqlUnitOfWork(scene.engine), scene.clock).execute(
            scene.second, scene.collector.user_id, Role.READONLY
        )
    )
    await until_one_waits(scene.engine)
    held.release.set()
    await deactivation
    changed = await change
    assert (changed.role, changed.active) == (Role.READONLY, False)
    assert (await stored(scene, scene.collector)) == changed


async def test_of_two_admins_demoting_each_other_the_second_is_refused(scene):
    held = HeldCommit(scene.engine)
    first = asyncio.create_task(
        ChangeUserRole(held, scene.clock).execute(scene.first, scene.second.user_id, Role.READONLY)
    )
    await held.committing.wait()
    second = asyncio.create_task(
        ChangeUserRole(SqlUnitOfWork(scene.engine), scene.clock).execute(
            scene.second, scene.first.user_id, Role.READONLY
        )
    )
    await until_one_waits(scene.engine)
    held.release.set()
    await first
    with pytest.raises(PermissionDenied):
        await second
    admins = [
        user
        for user in [await stored(scene, scene.first), await stored(scene, scene.second)]
        if user.role is Role.AGENCY_ADMIN and user.active
    ]
    assert [admin.id for admin in admins] == [scene.first.user_id]


async def test_an_agency_held_by_a_user_change_still_takes_new_rows(scene):
    held = HeldCommit(scene.engine)
    deactivation = asyncio.create_task(
        DeactivateUser(held, scene.clock).execute(scene.first, scene.collector.user_id)
    )
    await held.committing.wait()
    try:
        async with asyncio.timeout(10):  # the insert's foreign-key check takes no turn
            debtor = await CreateDebtor(SqlUnitOfWork(scene.engine), scene.clock).execute(
                scene.first, NewDebtor(first_name="Ada", last_name="Lovelace")
            )
    finally:
        held.release.set()
        await deactivation
    assert debtor.agency_id == scene.first.agency_id


async def test_an_assignment_that_waited_for_a_deactivation_is_refused(scene):
    debtor = await CreateDebtor(SqlUnitOfWork(scene.engine), scene.clock).execute(
        scene.first, NewDebtor(first_name="Ada", last_name="Lovelace")
    )
    account = await PlaceAccount(SqlUnitOfWork(scene.engine), scene.clock).execute(
        scene.first,
        NewAccount(
            debtor_id=debtor.id,
            external_id="A-1",
            original_creditor="First Bank",
            currency="USD",
            placed_balance=10_000,
        ),
    )
    held = HeldCommit(scene.engine)
    deactivation = asyncio.create_task(
        DeactivateUser(held, scene.clock).execute(scene.first, scene.collector.user_id)
    )
    await held.committing.wait()
    assignment = asyncio.create_task(
        AssignCollector(SqlUnitOfWork(scene.engine), scene.clock).execute(
            scene.second, account.id, scene.collector.user_id
        )
    )
    await until_one_waits(scene.engine)
    held.release.set()
    await deactivation
    with pytest.raises(ValidationFailed):
        await assignment
    async with SqlUnitOfWork(scene.engine) as uow:
        unassigned = await uow.accounts.get(account.id)
    assert unassigned is not None
    assert unassigned.assigned_collector_id is None
