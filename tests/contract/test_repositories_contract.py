"""The repository ports' contract. Every adapter (memory, SQLite, PostgreSQL) passes it.

Entities are written straight through the repositories, so this checks the adapters alone:
round trips of every field, uniqueness, filters, orderings and keyset positions.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.activity import Activity, ActivityType, PromiseToPay
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.debtor import (
    ContactPreferences,
    Debtor,
    Phone,
    PhoneKind,
    PostalAddress,
)
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.domain.user import EMAIL_TAKEN, Role, User
from debtflow_core.errors import Conflict
from debtflow_core.ports.accounts import AccountPosition, AccountQuery, AccountSort
from debtflow_core.ports.activities import ActivityPosition, ActivityQuery
from debtflow_core.ports.audit_log import AuditPosition, AuditQuery
from debtflow_core.ports.debtors import DebtorPosition, DebtorQuery
from debtflow_core.ports.users import UserPosition, UserQuery

T0 = datetime(2026, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def agency(slug: str = "alpha") -> Agency:
    return Agency(id=uuid.uuid4(), slug=slug, name=slug.title(), created_at=T0)


def user(agency_id: uuid.UUID, email: str, role: Role = Role.COLLECTOR) -> User:
    return User(
        id=uuid.uuid4(),
        agency_id=agency_id,
        email=email,
        full_name="Grace Hopper",
        role=role,
        password_hash="hash",
        active=True,
        created_at=T0,
    )


def debtor(agency_id: uuid.UUID, first: str = "Ada", last: str = "Lovelace", **kw) -> Debtor:
    fields = dict(
        id=uuid.uuid4(),
        agency_id=agency_id,
        external_id=None,
        first_name=first,
        last_name=last,
        date_of_birth=None,
        phones=(),
        emails=(),
        address=None,
        contact_preferences=ContactPreferences(),
        created_at=T0,
        updated_at=T0,
    )
    return Debtor(**{**fields, **kw})


def account(agency_id: uuid.UUID, debtor_id: uuid.UUID, external_id: str, **kw) -> Account:
    fields = dict(
        id=uuid.uuid4(),
        agency_id=agency_id,
        debtor_id=debtor_id,
        external_id=external_id,
        original_creditor="First Bank",
        currency="USD",
        placed_balance=10_000,
        current_balance=10_000,
        charge_off_date=None,
        status=AccountStatus.ACTIVE,
        assigned_collector_id=None,
        placed_at=T0,
        updated_at=T0,
    )
    return Account(**{**fields, **kw})


@pytest.fixture
async def tenant(uow_factory):
    """An agency with a collector, committed."""
    a = agency()
    collector = user(a.id, "grace@alpha.example")
    async with uow_factory() as uow:
        await uow.agencies.add(a)
        await uow.users.add(collector)
        await uow.commit()
    return a, collector


async def test_agencies_round_trip_and_slugs_are_unique(uow_factory):
    a = agency()
    async with uow_factory() as uow:
        await uow.agencies.add(a)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.agencies.get(a.id) == a
        assert await uow.agencies.get_by_slug("alpha") == a
        assert await uow.agencies.get(uuid.uuid4()) is None
        assert await uow.agencies.get_by_slug("nope") is None
    with pytest.raises(Conflict):
        async with uow_factory() as uow:
            await uow.agencies.add(agency("alpha"))
            await uow.commit()


async def test_a_locked_agency_reads_like_get(uow_factory):
    """Taking turns under the lock is tested where it matters, on PostgreSQL, in
    tests/integration/test_user_locks.py."""
    a = agency()
    async with uow_factory() as uow:
        await uow.agencies.add(a)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.agencies.lock(a.id) == a
        assert await uow.agencies.lock(uuid.uuid4()) is None
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.agencies.get(a.id) == a  # the lock changed nothing


async def test_agency_ids_are_every_committed_agency(uow_factory):
    alpha, beta = agency("alpha"), agency("beta")
    async with uow_factory() as uow:
        assert await uow.agencies.ids() == []
        await uow.agencies.add(alpha)
        await uow.agencies.add(beta)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.agencies.add(agency("gamma"))  # never committed
    async with uow_factory() as uow:
        assert sorted(await uow.agencies.ids()) == sorted([alpha.id, beta.id])


async def test_users_round_trip_update_and_unique_email(uow_factory, tenant):
    a, collector = tenant
    admin = user(a.id, "admin@alpha.example", Role.AGENCY_ADMIN)
    async with uow_factory() as uow:
        await uow.users.add(admin)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.users.get(collector.id) == collector
        assert await uow.users.get_by_email("admin@alpha.example") == admin
        assert await uow.users.list(UserQuery(agency_id=a.id)) == [admin, collector]
        assert await uow.users.list(UserQuery(agency_id=uuid.uuid4())) == []
        changed = msgspec.structs.replace(collector, role=Role.READONLY, active=False)
        await uow.users.update(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.users.get(collector.id) == changed
    with pytest.raises(Conflict, match=f"^{EMAIL_TAKEN}$"):
        async with uow_factory() as uow:
            await uow.users.add(user(a.id, "admin@alpha.example"))
            await uow.commit()


async def test_users_list_filters_orders_by_code_point_and_pages(uow_factory, tenant):
    """By code point, as Python sorts: a locale's collation would put "ab" before "a.c"
    (punctuation counts last) and "émile" next to "e", and move the pages' boundaries."""
    a, grace = tenant  # a collector
    other = agency("beta")
    dot = user(a.id, "a.c@alpha.example", Role.AGENCY_ADMIN)
    underscore = user(a.id, "a_b@alpha.example", Role.READONLY)
    plain = user(a.id, "ab@alpha.example")
    accented = user(a.id, "émile@alpha.example", Role.READONLY)
    last = user(a.id, "zoe@alpha.example")
    gone = msgspec.structs.replace(user(a.id, "eve@alpha.example"), active=False)
    stranger = user(other.id, "aa@beta.example", Role.AGENCY_ADMIN)
    async with uow_factory() as uow:
        await uow.agencies.add(other)
        for u in (accented, last, plain, dot, gone, underscore, stranger):
            await uow.users.add(u)
        await uow.commit()

    async def emails(**kw):
        async with uow_factory() as uow:
            return [u.email for u in await uow.users.list(UserQuery(agency_id=a.id, **kw))]

    by_code_point = [dot, underscore, plain, gone, grace, last, accented]
    assert await emails() == [u.email for u in by_code_point]
    assert await emails(limit=3) == [dot.email, underscore.email, plain.email]
    after = UserPosition(plain.email)
    assert await emails(after=after, limit=3) == [gone.email, grace.email, last.email]
    assert await emails(after=UserPosition(accented.email)) == []
    assert await emails(after=UserPosition("b")) == [
        gone.email,
        grace.email,
        last.email,
        accented.email,
    ]
    assert await emails(role=Role.COLLECTOR) == [plain.email, gone.email, grace.email, last.email]
    assert await emails(role=Role.READONLY, after=UserPosition("a")) == [
        underscore.email,
        accented.email,
    ]
    assert await emails(active=False) == [gone.email]
    assert await emails(active=True, role=Role.COLLECTOR, after=after) == [grace.email, last.email]


async def test_debtors_keep_every_field(uow_factory, tenant):
    a, _ = tenant
    full = debtor(
        a.id,
        external_id="D-1",
        date_of_birth=date(1985, 12, 10),
        phones=(Phone(number="+15555550100", kind=PhoneKind.MOBILE), Phone(number="+15555550101")),
        emails=("ada@example.com",),
        address=PostalAddress(
            line1="1 Analytical Way",
            line2="Apt 2",
            city="Austin",
            state="TX",
            postal_code="73301",
            time_zone="America/Chicago",
        ),
        contact_preferences=ContactPreferences(do_not_text=True, cease_communication=True),
    )
    async with uow_factory() as uow:
        await uow.debtors.add(full)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.debtors.get(full.id)
        assert stored == full
        assert stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset() == timedelta(0)
        assert await uow.debtors.get_by_external_id(a.id, "D-1") == full
        assert await uow.debtors.get_by_external_id(uuid.uuid4(), "D-1") is None
        renamed = msgspec.structs.replace(full, last_name="King", phones=(), address=None)
        await uow.debtors.update(renamed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.debtors.get(full.id) == renamed
        assert await uow.debtors.lock(full.id) == renamed  # taking turns: test_debtor_locks
        assert await uow.debtors.lock(uuid.uuid4()) is None
    with pytest.raises(Conflict):
        async with uow_factory() as uow:
            await uow.debtors.add(debtor(a.id, external_id="D-1"))
            await uow.commit()
    async with uow_factory() as uow:  # debtors without an external id never clash
        await uow.debtors.add(debtor(a.id))
        await uow.debtors.add(debtor(a.id))
        await uow.commit()


async def test_debtor_search_filters_orders_and_pages(uow_factory, tenant):
    a, collector = tenant
    other = agency("beta")
    ada = debtor(a.id, "Ada", "Lovelace", created_at=at(1))
    alan = debtor(a.id, "Alan", "Turing", external_id="EXT_50%", created_at=at(2))
    grace = debtor(a.id, "Grace", "Hopper", created_at=at(2))
    stranger = debtor(other.id, "Ada", "Byron", created_at=at(3))
    async with uow_factory() as uow:
        await uow.agencies.add(other)
        for d in (ada, alan, grace, stranger):
            await uow.debtors.add(d)
        await uow.accounts.add(account(a.id, alan.id, "A-1", assigned_collector_id=collector.id))
        await uow.commit()

    async def search(**kw):
        async with uow_factory() as uow:
            return [d.id for d in await uow.debtors.search(DebtorQuery(agency_id=a.id, **kw))]

    newest_first = sorted([(at(2), alan.id), (at(2), grace.id)], reverse=True)
    assert await search() == [newest_first[0][1], newest_first[1][1], ada.id]
    assert await search(text="ADA") == [ada.id]
    assert await search(text="a lov") == [ada.id]
    assert await search(text="_50%") == [alan.id]
    assert await search(text="%") == [alan.id]
    assert await search(collector_id=collector.id) == [alan.id]
    assert await search(limit=1) == [newest_first[0][1]]
    after = DebtorPosition(*newest_first[0])
    assert await search(after=after) == [newest_first[1][1], ada.id]


async def test_a_name_is_found_as_stored_and_in_any_case_in_every_script(uow_factory, tenant):
    a, _ = tenant
    ilker = debtor(a.id, "İlker", "Yildiz", created_at=at(1))
    nikos = debtor(a.id, "Nikos", "ΠΑΠΑΔΟΠΟΥΛΟΣ", created_at=at(2))
    eleni = debtor(a.id, "Eleni", "ΠΑΠΑΣΤΕΡΓΙΟΥ", created_at=at(3))
    async with uow_factory() as uow:
        for n, d in enumerate((ilker, nikos, eleni)):
            await uow.debtors.add(d)
            await uow.accounts.add(account(a.id, d.id, f"A-{n}"))
        await uow.commit()

    async def found(text: str) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        async with uow_factory() as uow:
            debtors = await uow.debtors.search(DebtorQuery(agency_id=a.id, text=text))
            accounts = await uow.accounts.list(AccountQuery(agency_id=a.id, text=text))
        return [d.id for d in debtors], [acc.debtor_id for acc in accounts]

    # Python's str.lower() gives "İ" two code points and a final "Σ" the form "ς";
    # PostgreSQL's lower() neither, and every adapter lowers as it does.
    for text, expected in [
        ("İlker", ilker),
        ("ilker", ilker),
        ("ΠΑΠΑΔΟΠΟΥΛΟΣ", nikos),
        ("παπαδοπουλοσ", nikos),
        ("ΠΑΠΑΣ", eleni),
    ]:
        assert await found(text) == ([expected.id], [expected.id]), text


async def test_accounts_round_trip_and_external_ids_are_unique_per_agency(uow_factory, tenant):
    a, collector = tenant
    other = agency("beta")
    d = debtor(a.id)
    stranger = debtor(other.id)
    acc = account(
        a.id,
        d.id,
        "A-1",
        charge_off_date=date(2024, 1, 31),
        assigned_collector_id=collector.id,
        current_balance=9_999_999_999,
        placed_balance=9_999_999_999,
    )
    async with uow_factory() as uow:
        await uow.agencies.add(other)
        await uow.debtors.add(d)
        await uow.debtors.add(stranger)
        await uow.accounts.add(acc)
        await uow.accounts.add(account(other.id, stranger.id, "A-1"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.accounts.get(acc.id) == acc
        assert await uow.accounts.get_by_external_id(a.id, "A-1") == acc
        assert await uow.accounts.get(uuid.uuid4()) is None
    with pytest.raises(Conflict):
        async with uow_factory() as uow:
            await uow.accounts.add(account(a.id, d.id, "A-1"))
            await uow.commit()


async def test_account_update_saves_everything_but_balances(uow_factory, tenant):
    a, collector = tenant
    d = debtor(a.id)
    acc = account(a.id, d.id, "A-1")
    async with uow_factory() as uow:
        await uow.debtors.add(d)
        await uow.accounts.add(acc)
        await uow.commit()
    changed = msgspec.structs.replace(
        acc,
        status=AccountStatus.DISPUTED,
        assigned_collector_id=collector.id,
        original_creditor="Second Bank",
        charge_off_date=date(2025, 2, 28),
        current_balance=1,
        updated_at=at(5),
    )
    async with uow_factory() as uow:
        await uow.accounts.update(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.accounts.get(acc.id) == msgspec.structs.replace(
            changed, current_balance=acc.current_balance
        )


async def test_a_locked_account_reads_like_get(uow_factory, tenant):
    """Taking turns under the lock is tested where it matters, on PostgreSQL, in
    tests/integration/test_account_locks.py."""
    a, collector = tenant
    d = debtor(a.id)
    acc = account(a.id, d.id, "A-1", assigned_collector_id=collector.id, current_balance=7)
    async with uow_factory() as uow:
        await uow.debtors.add(d)
        await uow.accounts.add(acc)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.accounts.lock(acc.id) == acc
        assert await uow.accounts.lock(uuid.uuid4()) is None


@pytest.fixture
async def ledger(uow_factory, tenant):
    """Six accounts of one agency (plus one elsewhere) with distinct filters and ties."""
    a, collector = tenant
    other = agency("beta")
    ada = debtor(a.id, "Ada", "Lovelace")
    alan = debtor(a.id, "Alan", "Turing")
    stranger = debtor(other.id, "Ada", "Byron")
    accounts = [
        account(a.id, ada.id, "ACC-1", current_balance=100, placed_at=at(1)),
        account(
            a.id,
            ada.id,
            "ACC-2",
            current_balance=500,
            placed_at=at(2),
            assigned_collector_id=collector.id,
        ),
        account(
            a.id,
            alan.id,
            "ZZ_3",
            current_balance=500,
            placed_at=at(2),
            status=AccountStatus.DISPUTED,
        ),
        account(
            a.id,
            alan.id,
            "ACC-4",
            current_balance=0,
            placed_at=at(3),
            status=AccountStatus.PAID_IN_FULL,
            assigned_collector_id=collector.id,
        ),
        account(a.id, alan.id, "ACC-5", current_balance=7_000, placed_at=at(3)),
        account(
            a.id,
            ada.id,
            "ACC-6",
            current_balance=500,
            placed_at=at(4),
            assigned_collector_id=collector.id,
        ),
    ]
    async with uow_factory() as uow:
        await uow.agencies.add(other)
        for d in (ada, alan, stranger):
            await uow.debtors.add(d)
        for acc in accounts:
            await uow.accounts.add(acc)
        await uow.accounts.add(account(other.id, stranger.id, "ACC-1", placed_at=at(9)))
        await uow.commit()
    return a, collector, ada, alan, accounts


def expected_order(accounts: list[Account], sort: AccountSort) -> list[uuid.UUID]:
    if sort is AccountSort.NEWEST:
        return [a.id for a in sorted(accounts, key=lambda a: (a.placed_at, a.id), reverse=True)]
    keyed = sorted(accounts, key=lambda a: (a.current_balance, a.id))
    return [a.id for a in (keyed if sort is AccountSort.BALANCE_ASC else keyed[::-1])]


async def test_a_credit_balance_is_found_below_zero(uow_factory, ledger):
    a, *_ = ledger
    async with uow_factory() as uow:
        target = (await uow.accounts.list(AccountQuery(agency_id=a.id)))[0]
        await uow.accounts.adjust_balance(target.id, -target.current_balance - 50, floor=None)
        await uow.commit()
    async with uow_factory() as uow:
        credit = await uow.accounts.list(AccountQuery(agency_id=a.id, max_balance=-1))
    assert [(acc.id, acc.current_balance) for acc in credit] == [(target.id, -50)]


async def test_account_filters_each_and_combined(uow_factory, ledger):
    a, collector, _ada, alan, _accounts = ledger

    async def ids(**kw):
        async with uow_factory() as uow:
            found = await uow.accounts.list(AccountQuery(agency_id=a.id, **kw))
        return sorted(acc.external_id for acc in found)

    assert await ids() == ["ACC-1", "ACC-2", "ACC-4", "ACC-5", "ACC-6", "ZZ_3"]
    assert await ids(status=AccountStatus.DISPUTED) == ["ZZ_3"]
    assert await ids(collector_id=collector.id) == ["ACC-2", "ACC-4", "ACC-6"]
    assert await ids(unassigned=True) == ["ACC-1", "ACC-5", "ZZ_3"]
    assert await ids(debtor_id=alan.id) == ["ACC-4", "ACC-5", "ZZ_3"]
    assert await ids(min_balance=500) == ["ACC-2", "ACC-5", "ACC-6", "ZZ_3"]
    assert await ids(max_balance=500) == ["ACC-1", "ACC-2", "ACC-4", "ACC-6", "ZZ_3"]
    assert await ids(min_balance=100, max_balance=500) == ["ACC-1", "ACC-2", "ACC-6", "ZZ_3"]
    assert await ids(text="LOVELACE") == ["ACC-1", "ACC-2", "ACC-6"]
    assert await ids(text="alan t") == ["ACC-4", "ACC-5", "ZZ_3"]
    assert await ids(text="z_") == ["ZZ_3"]
    assert await ids(text="_") == ["ZZ_3"]
    assert await ids(text="acc-") == ["ACC-1", "ACC-2", "ACC-4", "ACC-5", "ACC-6"]
    assert await ids(text="ada", collector_id=collector.id, min_balance=1) == ["ACC-2", "ACC-6"]
    assert await ids(status=AccountStatus.ACTIVE, unassigned=True, text="ada") == ["ACC-1"]


@pytest.mark.parametrize("sort", list(AccountSort))
async def test_account_sorts_and_keyset_pages_are_stable(uow_factory, ledger, sort):
    a, *_, accounts = ledger
    expected = expected_order(accounts, sort)
    async with uow_factory() as uow:
        everything = await uow.accounts.list(AccountQuery(agency_id=a.id, sort=sort))
    assert [acc.id for acc in everything] == expected

    seen: list[uuid.UUID] = []
    after = None
    while True:
        async with uow_factory() as uow:
            page = await uow.accounts.list(
                AccountQuery(agency_id=a.id, sort=sort, after=after, limit=2)
            )
        if not page:
            break
        seen += [acc.id for acc in page]
        last = page[-1]
        after = AccountPosition(
            sort=sort, id=last.id, placed_at=last.placed_at, balance=last.current_balance
        )
    assert seen == expected


async def test_releasing_a_collector_unassigns_their_accounts_alone(uow_factory, ledger):
    a, collector, ada, *_ = ledger
    colleague = user(a.id, "alan@alpha.example")
    theirs = account(a.id, ada.id, "ACC-7", assigned_collector_id=colleague.id)
    async with uow_factory() as uow:
        await uow.users.add(colleague)
        await uow.accounts.add(theirs)
        await uow.commit()

    async def assigned() -> dict[str, uuid.UUID | None]:
        async with uow_factory() as uow:
            found = await uow.accounts.list(AccountQuery(agency_id=a.id, limit=100))
        return {acc.external_id: acc.assigned_collector_id for acc in found}

    before = await assigned()
    async with uow_factory() as uow:  # rolled back: nothing changes
        assert len(await uow.accounts.release_collector(a.id, collector.id, at=at(30))) == 3
    assert await assigned() == before

    async with uow_factory() as uow:
        assert await uow.accounts.release_collector(uuid.uuid4(), collector.id, at=at(30)) == []
        released = await uow.accounts.release_collector(a.id, collector.id, at=at(30))
        await uow.commit()
    assert sorted(acc.external_id for acc in released) == ["ACC-2", "ACC-4", "ACC-6"]
    assert {(acc.assigned_collector_id, acc.updated_at) for acc in released} == {(None, at(30))}
    async with uow_factory() as uow:
        assert [await uow.accounts.get(acc.id) for acc in released] == released
    assert await assigned() == {
        **before,
        "ACC-2": None,
        "ACC-4": None,
        "ACC-6": None,
        "ACC-7": colleague.id,
    }


async def test_activities_round_trip_and_page_newest_first(uow_factory, ledger):
    a, collector, *_, accounts = ledger
    target, elsewhere = accounts[0], accounts[1]
    promise = Activity(
        id=uuid.uuid4(),
        agency_id=a.id,
        account_id=target.id,
        type=ActivityType.PROMISE_TO_PAY,
        outcome="promised",
        note="pays on Friday",
        promise=PromiseToPay(amount=2_500, due_on=date(2026, 6, 1)),
        actor_id=collector.id,
        occurred_at=at(1),
    )
    notes = [
        Activity(
            id=uuid.uuid4(),
            agency_id=a.id,
            account_id=account_id,
            type=ActivityType.NOTE,
            outcome=None,
            note=None,
            promise=None,
            actor_id=None,
            occurred_at=at(minute),
        )
        for account_id, minute in [(target.id, 2), (target.id, 2), (elsewhere.id, 3)]
    ]
    async with uow_factory() as uow:
        for activity in [promise, *notes]:
            await uow.activities.add(activity)
        await uow.commit()
    async with uow_factory() as uow:
        listed = await uow.activities.list(ActivityQuery(account_id=target.id))
        ties = sorted(notes[:2], key=lambda n: n.id, reverse=True)
        assert listed == [*ties, promise]
        rest = await uow.activities.list(
            ActivityQuery(account_id=target.id, after=ActivityPosition(at(2), ties[0].id))
        )
        assert rest == [ties[1], promise]


async def test_audit_entries_round_trip_and_filter(uow_factory, tenant):
    a, collector = tenant
    entity = uuid.uuid4()

    def entry(minute: int, action: str, **kw) -> AuditEntry:
        fields = dict(
            id=uuid.uuid4(),
            agency_id=a.id,
            actor_id=collector.id,
            action=action,
            entity_type=action.partition(".")[0],
            entity_id=entity,
            before={"status": "active"},
            after={"status": "closed", "nested": {"n": [1, 2]}},
            occurred_at=at(minute),
        )
        return AuditEntry(**{**fields, **kw})

    entries = [
        entry(1, "account.placed", before={}),
        entry(2, "account.status_changed"),
        entry(3, "debtor.updated", entity_id=uuid.uuid4(), actor_id=None),
        entry(4, "user.created", agency_id=uuid.uuid4()),
    ]
    async with uow_factory() as uow:
        for e in entries:
            await uow.audit_log.add(e)
        await uow.commit()

    async def query(**kw):
        async with uow_factory() as uow:
            return await uow.audit_log.query(AuditQuery(agency_id=a.id, **kw))

    assert await query() == entries[2::-1]
    assert await query(entity_type="account") == [entries[1], entries[0]]
    assert await query(entity_id=entity) == [entries[1], entries[0]]
    assert await query(actor_id=collector.id) == [entries[1], entries[0]]
    assert await query(since=at(2), until=at(3)) == [entries[1]]
    assert await query(limit=1) == [entries[2]]
    assert await query(after=AuditPosition(at(3), entries[2].id)) == [entries[1], entries[0]]


async def test_payment_processors_round_trip(uow_factory, tenant):
    a, _ = tenant
    stripe = PaymentProcessor(
        id=uuid.uuid4(),
        agency_id=a.id,
        name="Stripe",
        kind=ProcessorKind.STRIPE,
        active=True,
        created_at=T0,
    )
    sandbox = msgspec.structs.replace(
        stripe, id=uuid.uuid4(), name="Sandbox", kind=ProcessorKind.SANDBOX
    )
    async with uow_factory() as uow:
        await uow.payment_processors.add(stripe)
        await uow.payment_processors.add(sandbox)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payment_processors.list(a.id) == [sandbox, stripe]
        assert await uow.payment_processors.get(stripe.id) == stripe
        assert await uow.payment_processors.get(uuid.uuid4()) is None
        assert await uow.payment_processors.list(uuid.uuid4()) == []
