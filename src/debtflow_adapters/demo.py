"""The demo agency: realistic-looking, entirely fictional data to try DebtFlow on.

Names come from common-name lists, phone numbers from the 555-01XX range reserved for
fiction, e-mail addresses from example.com (reserved by RFC 2606). The generator is seeded,
so every installation gets the same people and balances.

Everything is created and counted through the core's use cases, taken from a request scope
of the composition root's container, exactly as any other client would; nothing here
touches a database directly.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, TypeVar
from uuid import UUID

from debtflow_core.actor import Actor
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.activity import TIMED_CONTACT, ActivityType, PromiseToPay
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.debtor import Phone, PhoneKind, PostalAddress
from debtflow_core.domain.payment_processor import ProcessorKind
from debtflow_core.domain.user import Role, User
from debtflow_core.errors import Conflict
from debtflow_core.pagination import MAX_LIMIT, Page
from debtflow_core.use_cases.accounts import (
    AssignCollector,
    ChangeAccountStatus,
    ListAccounts,
    NewAccount,
    PlaceAccount,
)
from debtflow_core.use_cases.activities import ListActivities, NewActivity, RecordActivity
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor, SearchDebtors
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.users import CreateUser, ListUsers, NewUser

if TYPE_CHECKING:  # the command line reads the constants below without loading dishka
    from dishka import AsyncContainer

T = TypeVar("T")

SLUG = "demo"
AGENCY_NAME = "Demo Collections"
DEBTORS = 50
ACCOUNTS = 60
_SEED = 20240601


class Login(NamedTuple):
    """A demo user; the password is printed for anyone trying the demo, so it is no secret."""

    email: str
    full_name: str
    role: Role
    password: str


LOGINS = (
    Login("admin@demo.example.com", "Avery Morgan", Role.AGENCY_ADMIN, "demo-admin-password"),
    Login("carla@demo.example.com", "Carla Diaz", Role.COLLECTOR, "demo-collector-password"),
    Login("colin@demo.example.com", "Colin Park", Role.COLLECTOR, "demo-collector-password"),
    Login("riley@demo.example.com", "Riley Chen", Role.READONLY, "demo-readonly-password"),
)

_FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Carlos", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley",
    "Luis", "Kimberly", "Steven", "Emily", "Andrew", "Donna", "Kenji", "Michelle", "Joshua",
    "Carol", "Kevin", "Amanda", "Brian", "Priya", "Aisha", "Dmitri",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "Nguyen", "Patel", "Kowalski",
    "O'Brien", "Okafor", "Schmidt", "Rossi",
)  # fmt: skip
_STREETS = (
    "Maple Ave", "Oak St", "Cedar Ln", "Pine St", "Elm St", "Washington Blvd", "Lake Dr",
    "Hillcrest Rd", "Park Ave", "Sunset Blvd", "River Rd", "Main St", "Church St", "Highland Ave",
)  # fmt: skip
_CITIES = (
    ("Springfield", "IL", "627", "217", "America/Chicago"),
    ("Columbus", "OH", "432", "614", "America/New_York"),
    ("Austin", "TX", "787", "512", "America/Chicago"),
    ("Denver", "CO", "802", "303", "America/Denver"),
    ("Phoenix", "AZ", "850", "602", "America/Phoenix"),
    ("Portland", "OR", "972", "503", "America/Los_Angeles"),
    ("Tampa", "FL", "336", "813", "America/New_York"),
    ("Nashville", "TN", "372", "615", "America/Chicago"),
    ("Sacramento", "CA", "958", "916", "America/Los_Angeles"),
    ("Albany", "NY", "122", "518", "America/New_York"),
)
_CREDITORS = (
    "Northwind Bank", "Contoso Medical Group", "Fabrikam Wireless", "Tailspin Auto Finance",
    "Wide World Utilities", "Litware Credit Union",
)  # fmt: skip
_CONTACT_TYPES = (ActivityType.CALL, ActivityType.CALL, ActivityType.SMS, ActivityType.EMAIL)
_CLOSING_STATUSES = (AccountStatus.SETTLED, AccountStatus.CLOSED, AccountStatus.RECALLED)
_CALL_OUTCOMES = ("no answer", "left voicemail", "spoke with debtor", "wrong number", "busy")


async def seed(request: AsyncContainer) -> Agency | None:
    """Create the demo agency and its data; ``None`` if the agency exists, which is left
    as it is (so seeding twice changes nothing).

    Placement, assignment and status changes are the platform's (admin) actions; each
    collector records the calls, texts, promises and disputes of their own accounts.
    """
    try:
        agency = await (await request.get(CreateAgency)).execute(
            NewAgency(slug=SLUG, name=AGENCY_NAME)
        )
    except Conflict:
        return None
    rng = random.Random(_SEED)
    system = Actor.system(agency.id)
    create_user, create_debtor = await request.get(CreateUser), await request.get(CreateDebtor)
    place, assign = await request.get(PlaceAccount), await request.get(AssignCollector)
    record = await request.get(RecordActivity)
    change_status = await request.get(ChangeAccountStatus)
    users = [
        await create_user.execute(
            system,
            NewUser(
                email=login.email,
                full_name=login.full_name,
                role=login.role,
                password=login.password,
            ),
        )
        for login in LOGINS
    ]
    collectors = [user for user in users if user.role is Role.COLLECTOR]
    await (await request.get(AddPaymentProcessor)).execute(
        system, NewPaymentProcessor(name="Sandbox", kind=ProcessorKind.SANDBOX)
    )
    debtors = [
        await create_debtor.execute(system, _fake_debtor(rng, number))
        for number in range(1, DEBTORS + 1)
    ]
    today = date.today()
    closing_statuses = itertools.cycle(_CLOSING_STATUSES)
    for number in range(1, ACCOUNTS + 1):
        debtor = debtors[number - 1] if number <= len(debtors) else rng.choice(debtors)
        account = await place.execute(system, _fake_account(rng, number, debtor.id, today))
        if rng.random() < 0.7:
            collector = rng.choice(collectors)
            await assign.execute(system, account.id, collector.id)
            for activity in _collector_work(rng, account.current_balance, today):
                await _record(record, _actor(collector), account.id, activity)
            continue
        letter = NewActivity(type=ActivityType.LETTER, outcome="validation notice mailed")
        await record.execute(system, account.id, letter)
        if rng.random() < 0.4:
            status = next(closing_statuses)
            note = NewActivity(type=ActivityType.NOTE, note=f"creditor asked for {status}")
            await record.execute(system, account.id, note)
            await change_status.execute(system, account.id, status)
    return agency


async def _record(
    record: RecordActivity, actor: Actor, account_id: UUID, activity: NewActivity
) -> None:
    """Record a collector's step. The demo is seeded at any hour: a call or a text that the
    debtor's calling hours forbid now is recorded as a note that it waits for them."""
    try:
        await record.execute(actor, account_id, activity)
    except Conflict as refused:
        if activity.type not in TIMED_CONTACT:
            raise
        held = NewActivity(type=ActivityType.NOTE, note=f"{activity.type} held: {refused.detail}")
        await record.execute(actor, account_id, held)


def _actor(user: User) -> Actor:
    return Actor(user_id=user.id, agency_id=user.agency_id, role=user.role)


def _collector_work(rng: random.Random, balance: int, today: date) -> list[NewActivity]:
    """A collector's attempts on one account: calls and messages, then perhaps a promise to
    pay or a dispute (which the core turns into a disputed account)."""
    work = []
    for _ in range(rng.randrange(0, 4)):
        kind = rng.choice(_CONTACT_TYPES)
        outcome = rng.choice(_CALL_OUTCOMES) if kind is ActivityType.CALL else "sent"
        work.append(NewActivity(type=kind, outcome=outcome))
    roll = rng.random()
    if roll < 0.25:
        promise = PromiseToPay(
            amount=max(1, balance // rng.choice((2, 4, 10))),
            due_on=today + timedelta(days=rng.randrange(3, 45)),
        )
        work.append(NewActivity(type=ActivityType.PROMISE_TO_PAY, promise=promise))
    elif roll < 0.35:
        work.append(NewActivity(type=ActivityType.DISPUTE, note="does not recognise the debt"))
    return work


def _fake_account(rng: random.Random, number: int, debtor_id: UUID, today: date) -> NewAccount:
    return NewAccount(
        debtor_id=debtor_id,
        external_id=f"DEMO-A{number:04d}",
        original_creditor=rng.choice(_CREDITORS),
        currency="USD",
        placed_balance=rng.randrange(2_500, 950_000),
        charge_off_date=today - timedelta(days=rng.randrange(60, 900)),
    )


def _fake_debtor(rng: random.Random, number: int) -> NewDebtor:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    city, state, zip_prefix, area_code, time_zone = rng.choice(_CITIES)
    local_part = f"{first}.{last}".lower().replace("'", "")
    return NewDebtor(
        first_name=first,
        last_name=last,
        external_id=f"DEMO-D{number:04d}",
        date_of_birth=date(1950, 1, 1) + timedelta(days=rng.randrange(0, 50 * 365)),
        phones=(
            Phone(number=f"+1 {area_code} 555 01{rng.randrange(100):02d}", kind=PhoneKind.MOBILE),
        ),
        emails=(f"{local_part}{rng.randrange(1, 100)}@example.com",),
        address=PostalAddress(
            line1=f"{rng.randrange(10, 9999)} {rng.choice(_STREETS)}",
            city=city,
            state=state,
            postal_code=f"{zip_prefix}{rng.randrange(100):02d}",
            time_zone=time_zone,
        ),
    )


class Summary(NamedTuple):
    """How much an agency holds: the counts ``debtflow demo`` and ``seed-demo`` print."""

    users: int
    debtors: int
    accounts: Counter[AccountStatus]
    activities: int


async def summarize(request: AsyncContainer, agency: Agency) -> Summary:
    """Count what the agency holds, reading through the use cases like any other client."""
    system = Actor.system(agency.id)
    list_users = await request.get(ListUsers)
    search, accounts = await request.get(SearchDebtors), await request.get(ListAccounts)
    users = await _all_pages(partial(list_users.execute, system, limit=MAX_LIMIT))
    list_activities = await request.get(ListActivities)
    debtors = await _all_pages(partial(search.execute, system, limit=MAX_LIMIT))
    placed = await _all_pages(partial(accounts.execute, system, limit=MAX_LIMIT))
    activities = 0
    for account in placed:
        fetch = partial(list_activities.execute, system, account.id, limit=MAX_LIMIT)
        activities += len(await _all_pages(fetch))
    return Summary(
        users=len(users),
        debtors=len(debtors),
        accounts=Counter(account.status for account in placed),
        activities=activities,
    )


async def _all_pages(fetch: Callable[..., Awaitable[Page[T]]]) -> list[T]:
    """Every item of a paginated list; ``fetch(cursor=…)`` returns one page."""
    items: list[T] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor=cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
