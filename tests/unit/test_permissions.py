"""The access policy, through the use cases: tenancy, roles and object-level reach."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Self
from uuid import UUID

import pytest

from debtflow_adapters.memory import InMemoryStore, InMemoryUnitOfWork
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.user import Role
from debtflow_core.errors import NotFound, PermissionDenied, ValidationFailed
from debtflow_core.use_cases.accounts import (
    AccountFilters,
    AssignCollector,
    ChangeAccountStatus,
    GetAccount,
    ListAccounts,
    UnassignCollector,
)
from debtflow_core.use_cases.activities import ListActivities, NewActivity, RecordActivity
from debtflow_core.use_cases.audit_log import QueryAuditLog
from debtflow_core.use_cases.debtors import (
    CreateDebtor,
    DebtorChanges,
    GetDebtor,
    NewDebtor,
    SearchDebtors,
    UpdateDebtor,
)
from debtflow_core.use_cases.users import ChangeUserRole, CreateUser, ListUsers, NewUser

NOTE = NewActivity(type=ActivityType.NOTE, note="called back later")


class LockRecordingUnitOfWork(InMemoryUnitOfWork):
    """An in-memory unit of work that records each lock taken through it, by repository."""

    def __init__(self, store: InMemoryStore) -> None:
        super().__init__(store)
        self.locked: list[str] = []

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        for name, repository in vars(self).items():
            if callable(getattr(repository, "lock", None)):
                repository.lock = self._recording(name, repository.lock)
        return self

    def _recording(
        self, name: str, lock: Callable[[UUID], Awaitable[Any]]
    ) -> Callable[[UUID], Awaitable[Any]]:
        async def recorded(id_: UUID) -> Any:
            self.locked.append(name)
            return await lock(id_)

        return recorded


@pytest.fixture
async def scene(world):
    """Agency A with one account per collector, agency B with one account."""
    a = await world.agency("alpha")
    b = await world.agency("beta")
    mine = await world.account(a.admin, external_id="A-1", collector=a.collector)
    theirs = await world.account(a.admin, external_id="A-2", collector=a.colleague)
    foreign = await world.account(b.admin, external_id="B-1", collector=b.collector)
    return world, a, b, mine, theirs, foreign


async def test_a_collector_lists_only_assigned_accounts(scene):
    world, a, _, mine, _theirs, _ = scene
    page = await world.use(ListAccounts).execute(a.collector)
    assert [acc.id for acc in page.items] == [mine.id]
    asking_for_colleague = AccountFilters(collector_id=a.colleague.user_id)
    assert (await world.use(ListAccounts).execute(a.collector, asking_for_colleague)).items == []
    unassigned = AccountFilters(unassigned=True)
    assert (await world.use(ListAccounts).execute(a.collector, unassigned)).items == []


async def test_a_collector_cannot_read_or_change_a_colleagues_or_foreign_account(scene):
    world, a, _, _, theirs, foreign = scene
    for account in (theirs, foreign):
        with pytest.raises(NotFound):
            await world.use(GetAccount).execute(a.collector, account.id)
        with pytest.raises(NotFound):
            await world.use(RecordActivity).execute(a.collector, account.id, NOTE)
        with pytest.raises(NotFound):
            await world.use(ListActivities).execute(a.collector, account.id)
        with pytest.raises(NotFound):
            await world.use(ChangeAccountStatus).execute(
                a.collector, account.id, AccountStatus.CLOSED
            )
        with pytest.raises(NotFound):
            await world.use(GetDebtor).execute(a.collector, account.debtor_id)
        with pytest.raises(NotFound):
            await world.use(UpdateDebtor).execute(
                a.collector, account.debtor_id, DebtorChanges(first_name="Eve")
            )


async def test_a_collector_works_their_own_account_but_does_not_manage_it(scene):
    world, a, _, mine, _, _ = scene
    assert (await world.use(GetAccount).execute(a.collector, mine.id)).id == mine.id
    activity = await world.use(RecordActivity).execute(a.collector, mine.id, NOTE)
    assert activity.actor_id == a.collector.user_id
    debtor = await world.use(UpdateDebtor).execute(
        a.collector, mine.debtor_id, DebtorChanges(emails=("ada@example.com",))
    )
    assert debtor.emails == ("ada@example.com",)
    with pytest.raises(PermissionDenied):
        await world.use(ChangeAccountStatus).execute(a.collector, mine.id, AccountStatus.CLOSED)
    with pytest.raises(PermissionDenied):
        await world.use(UnassignCollector).execute(a.collector, mine.id)
    with pytest.raises(PermissionDenied):
        await world.use(AssignCollector).execute(a.collector, mine.id, a.collector.user_id)
    searched = await world.use(SearchDebtors).execute(a.collector)
    assert [d.id for d in searched.items] == [mine.debtor_id]


async def test_readonly_reads_everything_in_its_agency_and_changes_nothing(scene):
    world, a, _, mine, theirs, _ = scene
    audit_before = len(world.store.audit_log)
    listed = await world.use(ListAccounts).execute(a.readonly)
    assert {acc.id for acc in listed.items} == {mine.id, theirs.id}
    assert (await world.use(GetDebtor).execute(a.readonly, theirs.debtor_id)).id

    writes = [
        world.use(RecordActivity).execute(a.readonly, mine.id, NOTE),
        world.use(UpdateDebtor).execute(a.readonly, mine.debtor_id, DebtorChanges(last_name="X")),
        world.use(CreateDebtor).execute(a.readonly, NewDebtor(first_name="A", last_name="B")),
        world.use(ChangeAccountStatus).execute(a.readonly, mine.id, AccountStatus.CLOSED),
        world.use(AssignCollector).execute(a.readonly, theirs.id, a.collector.user_id),
        world.use(UnassignCollector).execute(a.readonly, mine.id),
        world.use(ChangeUserRole).execute(a.readonly, a.collector.user_id, Role.AGENCY_ADMIN),
        world.use(CreateUser).execute(
            a.readonly,
            NewUser(email="x@alpha.example", full_name="X", role=Role.READONLY, password="p" * 12),
        ),
    ]
    for write in writes:
        with pytest.raises(PermissionDenied):
            await write
    assert len(world.store.audit_log) == audit_before


async def test_nothing_crosses_agencies_even_for_an_admin(scene):
    world, a, b, _, _, foreign = scene
    with pytest.raises(NotFound):
        await world.use(GetAccount).execute(a.admin, foreign.id)
    with pytest.raises(NotFound):
        await world.use(ChangeAccountStatus).execute(a.admin, foreign.id, AccountStatus.CLOSED)
    with pytest.raises(NotFound):
        await world.use(GetDebtor).execute(a.admin, foreign.debtor_id)
    with pytest.raises(NotFound):
        await world.use(ChangeUserRole).execute(a.admin, b.collector.user_id, Role.READONLY)
    assert all(
        acc.agency_id == a.admin.agency_id
        for acc in (await world.use(ListAccounts).execute(a.admin)).items
    )
    users = await world.use(ListUsers).execute(a.admin)
    assert {u.agency_id for u in users.items} == {a.admin.agency_id}
    entries = await world.use(QueryAuditLog).execute(a.admin)
    assert {e.agency_id for e in entries.items} == {a.admin.agency_id}


async def test_a_collector_in_another_agency_cannot_be_assigned(scene):
    world, a, b, mine, _, _ = scene
    with pytest.raises(ValidationFailed):
        await world.use(AssignCollector).execute(a.admin, mine.id, b.collector.user_id)
    with pytest.raises(ValidationFailed):
        await world.use(AssignCollector).execute(a.admin, mine.id, a.readonly.user_id)


async def test_only_admins_manage_users_and_read_the_audit_log(scene):
    world, a, _, _, _, _ = scene
    for actor in (a.collector, a.readonly):
        with pytest.raises(PermissionDenied):
            await world.use(ListUsers).execute(actor)
        with pytest.raises(PermissionDenied):
            await world.use(QueryAuditLog).execute(actor)


async def test_a_caller_refused_an_account_change_takes_no_lock(scene):
    """The locks an assignment or a status change takes make changes to the agency's users
    and to the account wait: a caller who may not make the change is refused before taking
    any."""
    world, a, _, mine, theirs, foreign = scene
    uow = LockRecordingUnitOfWork(world.store)
    assign, unassign = AssignCollector(uow, world.clock), UnassignCollector(uow, world.clock)
    change_status = ChangeAccountStatus(uow, world.clock)
    refused = [
        (a.collector, mine, PermissionDenied),
        (a.readonly, mine, PermissionDenied),
        (a.collector, theirs, NotFound),  # out of reach: NotFound before the role is judged
        (a.admin, foreign, NotFound),
    ]
    for actor, account, refusal in refused:
        with pytest.raises(refusal):
            await assign.execute(actor, account.id, a.colleague.user_id)
        with pytest.raises(refusal):
            await unassign.execute(actor, account.id)
        with pytest.raises(refusal):
            await change_status.execute(actor, account.id, AccountStatus.DISPUTED)
    assert uow.locked == []
    # An admin's assignment still locks the agency, then the account, as user changes do.
    await assign.execute(a.admin, mine.id, a.colleague.user_id)
    assert uow.locked == ["agencies", "accounts"]
    await unassign.execute(a.admin, mine.id)
    assert uow.locked == ["agencies", "accounts", "accounts"]
    await change_status.execute(a.admin, mine.id, AccountStatus.DISPUTED)
    assert uow.locked == ["agencies", "accounts", "accounts", "accounts"]
