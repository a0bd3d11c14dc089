from __future__ import annotations

import uuid

import msgspec
import pytest

from debtflow_core.domain.account import ALLOWED_TRANSITIONS, Account, AccountStatus
from debtflow_core.domain.money import MAX_AMOUNT, validate_currency
from debtflow_core.errors import Conflict, ValidationFailed
from debtflow_core.pagination import encode_cursor
from debtflow_core.ports.accounts import AccountPosition, AccountSort
from debtflow_core.use_cases.accounts import (
    AccountFilters,
    ChangeAccountStatus,
    GetAccount,
    ListAccounts,
    NewAccount,
    PlaceAccount,
    UnassignCollector,
)
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from tests.unit.conftest import START


@pytest.fixture
async def alpha(world):
    return await world.agency("alpha")


async def test_a_forbidden_transition_is_refused_and_writes_nothing(world, alpha):
    account = await world.account(alpha.admin, external_id="A-1")
    await world.use(ChangeAccountStatus).execute(alpha.admin, account.id, AccountStatus.RECALLED)
    stored = dict(world.store.accounts)
    audit = dict(world.store.audit_log)

    with pytest.raises(Conflict, match="from recalled to active"):
        await world.use(ChangeAccountStatus).execute(alpha.admin, account.id, AccountStatus.ACTIVE)

    assert world.store.accounts == stored
    assert world.store.audit_log == audit


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (start, target)
        for start in AccountStatus
        for target in AccountStatus
        if target not in ALLOWED_TRANSITIONS[start]
    ],
)
def test_the_lifecycle_refuses_every_move_it_does_not_list(start, target):
    account = Account(
        id=uuid.uuid4(),
        agency_id=uuid.uuid4(),
        debtor_id=uuid.uuid4(),
        external_id="X",
        original_creditor="C",
        currency="USD",
        placed_balance=0,
        current_balance=0,
        charge_off_date=None,
        status=start,
        assigned_collector_id=None,
        placed_at=START,
        updated_at=START,
    )
    with pytest.raises(Conflict):
        account.transition_to(target, at=START)


@pytest.mark.parametrize("code", ["usd", "US", "USDD", "US1", "USD\n", " USD", "ÉUR"])
def test_a_currency_is_three_capital_letters_and_nothing_else(code):
    # A code that differs by a newline would be a currency of its own in every report.
    with pytest.raises(ValidationFailed, match="is not an ISO-4217 currency code"):
        validate_currency(code)


async def test_paid_in_full_needs_nothing_owed(world, alpha):
    owing = await world.account(alpha.admin, external_id="A-1", balance=500)
    with pytest.raises(Conflict, match="only when nothing is owed on it"):
        await world.use(ChangeAccountStatus).execute(
            alpha.admin, owing.id, AccountStatus.PAID_IN_FULL
        )
    cleared = await world.account(alpha.admin, external_id="A-2", balance=0)
    paid = await world.use(ChangeAccountStatus).execute(
        alpha.admin, cleared.id, AccountStatus.PAID_IN_FULL
    )
    assert paid.status is AccountStatus.PAID_IN_FULL


async def test_a_status_change_is_audited_with_before_and_after(world, alpha):
    account = await world.account(alpha.admin, external_id="A-1")
    closed = await world.use(ChangeAccountStatus).execute(
        alpha.admin, account.id, AccountStatus.CLOSED
    )
    # Sent again (its answer lost, say), the change is done already: nothing more happens.
    again = await world.use(ChangeAccountStatus).execute(
        alpha.admin, account.id, AccountStatus.CLOSED
    )
    assert again == closed
    page = await world.use(QueryAuditLog).execute(
        alpha.admin, AuditFilters(entity_type="account", entity_id=account.id)
    )
    latest, placed = page.items
    assert latest.action == "account.status_changed"
    assert latest.actor_id == alpha.admin.user_id
    assert latest.before == {"status": "active"}
    assert latest.after == {"status": "closed"}
    assert placed.action == "account.placed"
    assert placed.after["placed_balance"] == 10_000


async def test_placing_validates_money_debtor_and_uniqueness(world, alpha):
    debtor = await world.debtor(alpha.admin)
    good = NewAccount(
        debtor_id=debtor.id,
        external_id="A-1",
        original_creditor="Bank",
        currency="USD",
        placed_balance=12_345,
    )
    account = await world.use(PlaceAccount).execute(alpha.admin, good)
    assert (account.placed_balance, account.current_balance) == (12_345, 12_345)
    assert account.status is AccountStatus.ACTIVE

    with pytest.raises(Conflict):
        await world.use(PlaceAccount).execute(alpha.admin, good)
    bad = {
        "currency": {"currency": "usd"},
        "placed_balance": {"placed_balance": -1},
        "external_id": {"external_id": "  "},
    }
    for field, change in bad.items():
        command = msgspec.structs.replace(good, **{"external_id": "A-2", **change})
        with pytest.raises(ValidationFailed) as caught:
            await world.use(PlaceAccount).execute(alpha.admin, command)
        assert caught.value.field == field
    beta = await world.agency("beta")
    foreign_debtor = await world.debtor(beta.admin)
    with pytest.raises(ValidationFailed) as caught:
        await world.use(PlaceAccount).execute(
            alpha.admin,
            msgspec.structs.replace(good, external_id="A-3", debtor_id=foreign_debtor.id),
        )
    assert caught.value.field == "debtor_id"
    largest = msgspec.structs.replace(good, external_id="A-4", placed_balance=MAX_AMOUNT)
    assert (await world.use(PlaceAccount).execute(alpha.admin, largest)).placed_balance == 10**12
    with pytest.raises(ValidationFailed) as caught:
        await world.use(PlaceAccount).execute(
            alpha.admin,
            msgspec.structs.replace(largest, external_id="A-5", placed_balance=10**12 + 1),
        )
    assert caught.value.field == "placed_balance"


async def test_list_filters_combine(world, alpha):
    ada = await world.debtor(alpha.admin, "Ada", "Lovelace")
    alan = await world.debtor(alpha.admin, "Alan", "Turing")
    a1 = await world.account(alpha.admin, external_id="ACC-1", balance=100, debtor=ada)
    a2 = await world.account(
        alpha.admin, external_id="ACC-2", balance=5_000, debtor=alan, collector=alpha.collector
    )
    a3 = await world.account(alpha.admin, external_id="ZZ-3", balance=9_000, debtor=alan)
    await world.use(ChangeAccountStatus).execute(alpha.admin, a3.id, AccountStatus.DISPUTED)
    list_ = world.use(ListAccounts)

    async def ids(**filters):
        return [a.id for a in (await list_.execute(alpha.admin, AccountFilters(**filters))).items]

    assert await ids() == [a3.id, a2.id, a1.id]
    assert await ids(status=AccountStatus.DISPUTED) == [a3.id]
    assert await ids(collector_id=alpha.collector.user_id) == [a2.id]
    assert await ids(unassigned=True) == [a3.id, a1.id]
    assert await ids(min_balance=100, max_balance=5_000) == [a2.id, a1.id]
    assert await ids(text="turING") == [a3.id, a2.id]
    assert await ids(text="acc-") == [a2.id, a1.id]
    assert await ids(text="turing", status=AccountStatus.ACTIVE) == [a2.id]
    assert await ids(sort=AccountSort.BALANCE_ASC) == [a1.id, a2.id, a3.id]
    assert await ids(sort=AccountSort.BALANCE_DESC) == [a3.id, a2.id, a1.id]


async def test_pages_walk_the_whole_list_once(world, alpha):
    debtor = await world.debtor(alpha.admin)
    placed = [
        await world.account(alpha.admin, external_id=f"A-{i}", balance=i % 4, debtor=debtor)
        for i in range(11)
    ]
    for sort in AccountSort:
        seen, cursor = [], None
        while True:
            page = await world.use(ListAccounts).execute(
                alpha.admin, AccountFilters(sort=sort), limit=3, cursor=cursor
            )
            seen += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(a.id for a in seen) == sorted(a.id for a in placed)
        assert len(seen) == len(placed)


async def test_bad_cursors_and_limits_are_validation_errors(world, alpha):
    await world.account(alpha.admin, external_id="A-1")
    await world.account(alpha.admin, external_id="A-2")
    page = await world.use(ListAccounts).execute(alpha.admin, limit=1)
    for kwargs in (
        {"cursor": "not-a-cursor"},
        {"cursor": page.next_cursor, "filters": AccountFilters(sort=AccountSort.BALANCE_ASC)},
        {  # a position with no balance: on SQL an empty page, in memory a crash
            "cursor": encode_cursor(
                AccountPosition(sort=AccountSort.BALANCE_DESC, id=uuid.uuid4())
            ),
            "filters": AccountFilters(sort=AccountSort.BALANCE_DESC),
        },
        {"cursor": encode_cursor(AccountPosition(sort=AccountSort.NEWEST, id=uuid.uuid4()))},
        {"limit": 0},
        {"limit": 201},
        {"filters": AccountFilters(min_balance=-MAX_AMOUNT - 1)},
        {"filters": AccountFilters(max_balance=True)},
    ):
        with pytest.raises(ValidationFailed):
            await world.use(ListAccounts).execute(alpha.admin, **kwargs)


async def test_credit_balances_are_found_below_zero(world, alpha):
    owing = await world.account(alpha.admin, external_id="A-1", balance=100)
    overpaid = await world.account(alpha.admin, external_id="A-2", balance=100)
    async with world.uow as uow:
        await uow.accounts.adjust_balance(overpaid.id, -300, floor=None)
        await uow.commit()
    list_ = world.use(ListAccounts)

    async def ids(**filters):
        return [a.id for a in (await list_.execute(alpha.admin, AccountFilters(**filters))).items]

    assert await ids(max_balance=-1) == [overpaid.id]
    assert await ids(min_balance=-200) == [overpaid.id, owing.id]


async def test_assignment_round_trip(world, alpha):
    account = await world.account(alpha.admin, external_id="A-1", collector=alpha.collector)
    assert account.assigned_collector_id == alpha.collector.user_id
    account = await world.use(UnassignCollector).execute(alpha.admin, account.id)
    assert account.assigned_collector_id is None
    assert (await world.use(GetAccount).execute(alpha.admin, account.id)) == account
    actions = [
        e.action
        for e in (
            await world.use(QueryAuditLog).execute(alpha.admin, AuditFilters(entity_id=account.id))
        ).items
    ]
    assert actions == ["account.unassigned", "account.assigned", "account.placed"]
