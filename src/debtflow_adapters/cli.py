"""The ``debtflow`` command line: operator tasks on the database the settings name.

Each command decodes its arguments, calls core use cases from the container and prints
the outcome; the rules live in the use cases. A failure is one line on standard error,
``debtflow: error: …``, with exit status 2 for bad input or configuration and 1 for
anything else (a conflict, a missing agency, a database that cannot be reached).

Passwords are never taken from the command line, where other users of the machine can see
them in the process list and the shell keeps them in its history.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import itertools
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from alembic.util import CommandError
from dishka import AsyncContainer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.composition import make_container
from debtflow_adapters.persistence import create_audit_partitions, upgrade
from debtflow_adapters.settings import Settings, SettingsError, redact
from debtflow_core.actor import Actor
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.activity import ActivityType, PromiseToPay
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.debtor import Phone, PhoneKind, PostalAddress
from debtflow_core.domain.user import Role, User
from debtflow_core.errors import Conflict, DomainError, NotFound, ValidationFailed
from debtflow_core.pagination import MAX_LIMIT, Page
from debtflow_core.ports.unit_of_work import UnitOfWork
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
from debtflow_core.use_cases.users import CreateUser, ListUsers, NewUser

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")
Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]


class InputError(Exception):
    """The operator's input cannot be used (a password that was not confirmed, say)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return the process's exit status."""
    args = _parser().parse_args(argv)
    command: Command = args.command
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        return _fail(str(error), EXIT_USAGE)
    try:
        asyncio.run(command(settings, args))
    except InputError as error:
        return _fail(str(error), EXIT_USAGE)
    except ValidationFailed as error:
        return _fail(f"{error.field}: {error.detail}" if error.field else error.detail, EXIT_USAGE)
    except DomainError as error:
        return _fail(error.detail, EXIT_FAILURE)
    except SQLAlchemyError as error:
        reason = _first_line(getattr(error, "orig", None) or error)
        return _fail(f"database {_location(settings)}: {reason}", EXIT_FAILURE)
    except CommandError as error:
        return _fail(f"migrating {_location(settings)} failed: {_first_line(error)}", EXIT_FAILURE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


def _fail(message: str, status: int) -> int:
    print(f"debtflow: error: {redact(message)}", file=sys.stderr)
    return status


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="debtflow",
        description="Operate a DebtFlow installation.",
        epilog=(
            "Configuration comes from the environment: DEBTFLOW_DATABASE_URL (default "
            "sqlite+aiosqlite:///debtflow.db in the working directory; memory:// keeps "
            "everything in the process) and DEBTFLOW_REDIS_URL (optional). Run "
            "'debtflow migrate' before the other commands, and after every upgrade."
        ),
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    def command(
        name: str, run: Command, summary: str, details: str = ""
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=f"{summary} {details}".rstrip())
        sub.set_defaults(command=run)
        return sub

    command(
        "migrate",
        _migrate,
        "Bring the database schema up to date.",
        "On PostgreSQL, also create the audit log's partitions for the coming months.",
    )
    agency = command("create-agency", _create_agency, "Open a new agency.")
    agency.add_argument("--slug", required=True, help="short name: lower-case letters, digits, -")
    agency.add_argument("--name", required=True, help="the agency's display name")
    user = command(
        "create-user",
        _create_user,
        "Add a user to an agency.",
        "The password is asked for twice on a terminal, otherwise read as one line from "
        "standard input; never give it on the command line.",
    )
    user.add_argument("--agency", required=True, metavar="SLUG", help="the agency's slug")
    user.add_argument("--email", required=True, help="the address the user signs in with")
    user.add_argument("--role", required=True, help=", ".join(Role))
    user.add_argument("--name", metavar="FULL_NAME", help="the user's name (default: the email)")
    command(
        "seed-demo",
        _seed_demo,
        "Create the demo agency with fictional data.",
        f"The agency {DEMO_SLUG!r} gets an admin, two collectors, a read-only user, "
        f"{DEMO_DEBTORS} debtors, {DEMO_ACCOUNTS} accounts and their activities. If it "
        "exists already, nothing changes.",
    )
    command(
        "demo",
        _demo,
        "Migrate, seed the demo agency, and show its contents and logins.",
        "The quickest way to try DebtFlow: with no configuration it works on a SQLite file "
        "in the current directory.",
    )
    return parser


@asynccontextmanager
async def _request(settings: Settings) -> AsyncIterator[AsyncContainer]:
    """One request scope of a fresh container, which is closed (engine disposed) after."""
    container = make_container(settings)
    try:
        async with container() as request:
            yield request
    finally:
        await container.close()


async def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    if settings.in_memory:
        print("the in-memory store has no schema to migrate")
        return
    await _upgrade(settings)
    print(f"migrated {_location(settings)} to the latest schema")


async def _upgrade(settings: Settings) -> None:
    """Apply the pending migrations, then top up the audit log's monthly partitions (on
    PostgreSQL), so that a deployment that only ever runs ``migrate`` still has them."""
    await upgrade(settings.database_url)
    async with _request(settings) as request:
        await create_audit_partitions(await request.get(AsyncEngine))


async def _create_agency(settings: Settings, args: argparse.Namespace) -> None:
    async with _request(settings) as request:
        create_agency = await request.get(CreateAgency)
        agency = await create_agency.execute(NewAgency(slug=args.slug, name=args.name))
    print(f"created agency {agency.slug!r} ({agency.name}), id {agency.id}")


async def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    password = _read_password()
    async with _request(settings) as request:
        agency = await _agency_by_slug(request, args.agency)
        create_user = await request.get(CreateUser)
        user = await create_user.execute(
            Actor.system(agency.id),
            NewUser(
                email=args.email,
                full_name=args.name or args.email,
                role=args.role,
                password=password,
            ),
        )
    print(f"created {user.role} {user.email!r} in agency {agency.slug!r}, id {user.id}")


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise InputError("the two passwords differ")
        return password
    line = sys.stdin.readline()
    if not line:
        raise InputError("no password: give it as one line on standard input")
    return line.removesuffix("\n").removesuffix("\r")


async def _agency_by_slug(request: AsyncContainer, slug: str) -> Agency:
    uow: UnitOfWork = await request.get(UnitOfWork)
    async with uow:
        agency = await uow.agencies.get_by_slug(slug)
    if agency is None:
        raise NotFound(f"no agency has the slug {slug!r}")
    return agency


def _location(settings: Settings) -> str:
    """Where the data lives, for people: a SQLite file's absolute path, else the URL."""
    if settings.in_memory:
        return "memory (gone when this command ends)"
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return str(Path(url.database).resolve())
    return redact(settings.database_url)


# --- The demo agency ----------------------------------------------------------------------
# Realistic-looking, entirely fictional data: names from common-name lists, phone numbers in
# the 555-01XX range reserved for fiction, e-mail at example.com (reserved by RFC 2606).
# The generator is seeded, so every installation gets the same people and balances.

DEMO_SLUG = "demo"
DEMO_AGENCY_NAME = "Demo Collections"
DEMO_SEED = 20240601
DEMO_DEBTORS = 50
DEMO_ACCOUNTS = 60


class DemoLogin(NamedTuple):
    email: str
    full_name: str
    role: Role
    password: str


DEMO_LOGINS = (
    DemoLogin("admin@demo.example.com", "Avery Morgan", Role.AGENCY_ADMIN, "demo-admin-password"),
    DemoLogin("carla@demo.example.com", "Carla Diaz", Role.COLLECTOR, "demo-collector-password"),
    DemoLogin("colin@demo.example.com", "Colin Park", Role.COLLECTOR, "demo-collector-password"),
    DemoLogin("riley@demo.example.com", "Riley Chen", Role.READONLY, "demo-readonly-password"),
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


async def _seed_demo(settings: Settings, args: argparse.Namespace) -> None:
    async with _request(settings) as request:
        agency = await _seed(request)
        if agency is None:
            print(f"the demo agency {DEMO_SLUG!r} already exists; nothing was changed")
            return
        summary = await _summarize(request, agency)
    print(
        f"seeded the demo agency {DEMO_SLUG!r}: {summary.users} users, {summary.debtors} "
        f"debtors, {sum(summary.accounts.values())} accounts, {summary.activities} activities"
    )


async def _demo(settings: Settings, args: argparse.Namespace) -> None:
    if not settings.in_memory:
        await _upgrade(settings)
    async with _request(settings) as request:
        seeded = await _seed(request) is not None
        agency = await _agency_by_slug(request, DEMO_SLUG)
        summary = await _summarize(request, agency)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(summary.accounts.items()))
    logins = "\n".join(
        f"  {login.email:<26} {login.password:<24} {login.role}" for login in DEMO_LOGINS
    )
    print(
        f"{'Seeded' if seeded else 'Found'} the demo agency {agency.name!r} (slug {DEMO_SLUG!r})\n"
        f"  database    {_location(settings)}\n"
        f"  users       {summary.users}\n"
        f"  debtors     {summary.debtors}\n"
        f"  accounts    {sum(summary.accounts.values())} ({statuses})\n"
        f"  activities  {summary.activities}\n"
        f"Demo logins (e-mail, password, role):\n{logins}"
    )


async def _seed(request: AsyncContainer) -> Agency | None:
    """Create the demo agency and its data through the use cases; ``None`` if it exists.

    Placement, assignment and status changes are the platform's (admin) actions; each
    collector records the calls, texts, promises and disputes of their own accounts.
    """
    try:
        agency = await (await request.get(CreateAgency)).execute(
            NewAgency(slug=DEMO_SLUG, name=DEMO_AGENCY_NAME)
        )
    except Conflict:
        return None
    rng = random.Random(DEMO_SEED)
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
        for login in DEMO_LOGINS
    ]
    collectors = [user for user in users if user.role is Role.COLLECTOR]
    debtors = [
        await create_debtor.execute(system, _fake_debtor(rng, number))
        for number in range(1, DEMO_DEBTORS + 1)
    ]
    today = date.today()
    closing_statuses = itertools.cycle(_CLOSING_STATUSES)
    for number in range(1, DEMO_ACCOUNTS + 1):
        debtor = debtors[number - 1] if number <= len(debtors) else rng.choice(debtors)
        account = await place.execute(system, _fake_account(rng, number, debtor.id, today))
        if rng.random() < 0.7:
            collector = rng.choice(collectors)
            await assign.execute(system, account.id, collector.id)
            for activity in _collector_work(rng, account.current_balance, today):
                await record.execute(_actor(collector), account.id, activity)
            continue
        letter = NewActivity(type=ActivityType.LETTER, outcome="validation notice mailed")
        await record.execute(system, account.id, letter)
        if rng.random() < 0.4:
            status = next(closing_statuses)
            note = NewActivity(type=ActivityType.NOTE, note=f"creditor asked for {status}")
            await record.execute(system, account.id, note)
            await change_status.execute(system, account.id, status)
    return agency


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


class _Summary(NamedTuple):
    users: int
    debtors: int
    accounts: Counter[AccountStatus]
    activities: int


async def _summarize(request: AsyncContainer, agency: Agency) -> _Summary:
    """Count what the agency holds, reading through the use cases like any other client."""
    system = Actor.system(agency.id)
    users = await (await request.get(ListUsers)).execute(system)
    search, accounts = await request.get(SearchDebtors), await request.get(ListAccounts)
    list_activities = await request.get(ListActivities)
    debtors = await _all_pages(partial(search.execute, system, limit=MAX_LIMIT))
    placed = await _all_pages(partial(accounts.execute, system, limit=MAX_LIMIT))
    activities = 0
    for account in placed:
        fetch = partial(list_activities.execute, system, account.id, limit=MAX_LIMIT)
        activities += len(await _all_pages(fetch))
    return _Summary(
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


if __name__ == "__main__":
    sys.exit(main())
