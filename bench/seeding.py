"""A fresh, migrated PostgreSQL database holding a large, deterministic data set.

The rows are generated from seeded random generators and written with binary COPY straight
into the tables DebtFlow's migrations created: going through the use cases would take hours
for a million accounts. Every row type is a NamedTuple whose fields are the columns it
fills, checked against the migrated table before anything is written, so a schema change
breaks the seed loudly rather than silently. Columns the seed does not know (added by later
migrations) keep their defaults.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from typing import Any, NamedTuple

import msgspec
import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from debtflow_adapters.persistence.migrate import upgrade
from debtflow_adapters.security.argon2 import Argon2PasswordHasher

AGENCIES = 10
COLLECTORS_PER_AGENCY = 10
ACCOUNTS_PER_DEBTOR = 2
ASSIGNED_SHARE = 0.2

ADMIN_PASSWORD = "bench-admin-password"
COLLECTOR_PASSWORD = "bench-collector-password"
_TABLES = ("agencies", "users", "debtors", "accounts")

# Fixed, so that two runs produce the same rows whatever the day.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_PLACEMENT_SPAN = timedelta(days=3 * 365)
_STATUSES = ("active", "disputed", "paid_in_full", "settled", "closed", "recalled")
_STATUS_WEIGHTS = (70, 6, 8, 6, 7, 3)
_CREDITORS = ("Northwind Bank", "Contoso Telecom", "Fabrikam Health", "Tailspin Retail")
_FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jon")
_LAST_NAMES = ("Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Huang", "Ito")
_NO_CONTACT_LIMITS = {
    "do_not_call": False,
    "do_not_email": False,
    "do_not_text": False,
    "do_not_mail": False,
    "cease_communication": False,
}


class AgencyRow(NamedTuple):
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime


class UserRow(NamedTuple):
    id: uuid.UUID
    agency_id: uuid.UUID
    email: str
    full_name: str
    role: str
    password_hash: str
    active: bool
    created_at: datetime


class DebtorRow(NamedTuple):
    id: uuid.UUID
    agency_id: uuid.UUID
    external_id: str | None
    first_name: str
    last_name: str
    date_of_birth: date | None
    phones: list[dict[str, str]]
    emails: list[str]
    address: dict[str, str | None] | None
    contact_preferences: dict[str, bool]
    created_at: datetime
    updated_at: datetime


class AccountRow(NamedTuple):
    id: uuid.UUID
    agency_id: uuid.UUID
    debtor_id: uuid.UUID
    external_id: str
    original_creditor: str
    currency: str
    placed_balance: int
    current_balance: int
    charge_off_date: date | None
    status: str
    assigned_collector_id: uuid.UUID | None
    placed_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Login:
    email: str
    password: str


def admin_login(agency: int) -> Login:
    """The agency admin of seeded agency number ``agency`` (from 1)."""
    return Login(f"admin@{_slug(agency)}.example.com", ADMIN_PASSWORD)


def collector_login(agency: int, collector: int) -> Login:
    """Collector number ``collector`` (from 1) of seeded agency number ``agency``."""
    return Login(f"collector{collector:02d}@{_slug(agency)}.example.com", COLLECTOR_PASSWORD)


def recreate_database(admin_url: str, database: str) -> None:
    """Drop ``database`` (disconnecting its users) and create it empty."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        name = sql.Identifier(database)
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(name))


def migrate(url: str) -> None:
    """The schema exactly as production gets it: DebtFlow's own Alembic migrations."""
    asyncio.run(upgrade(url))


def seed(url: str, accounts: int) -> None:
    """Fill the migrated database at ``url`` with :data:`AGENCIES` agencies sharing
    ``accounts`` accounts, then ANALYZE so that the planner knows the sizes.

    Loaded the way bulk loads into PostgreSQL are fast: the secondary indexes are dropped
    first and rebuilt at the end from their own definitions, and the agencies are written
    in parallel, one process per core, each generating its rows from a seed of its own.
    """
    # One argon2 hash per role: hashing is deliberately slow, and every user of a role
    # may share the password.
    hasher = Argon2PasswordHasher()
    hashes = {
        "agency_admin": hasher.hash(ADMIN_PASSWORD),
        "collector": hasher.hash(COLLECTOR_PASSWORD),
    }
    numbers = range(1, AGENCIES + 1)
    shares = [accounts // AGENCIES + (number <= accounts % AGENCIES) for number in numbers]
    with psycopg.connect(url, autocommit=True) as connection:
        rebuild = _drop_secondary_indexes(connection, _TABLES)
    # No connection open across the fork: a child could close the parent's.
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        # list() waits for every agency and re-raises the first failure.
        list(pool.map(_seed_agency, repeat(url), numbers, shares, repeat(hashes)))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '1GB'")
        for statement in rebuild:
            connection.execute(statement)
        connection.execute("ANALYZE")


def _drop_secondary_indexes(
    connection: psycopg.Connection[Any], tables: Iterable[str]
) -> list[str]:
    """Drop the indexes of ``tables`` that back no constraint; return the statements that
    create them again exactly as they were."""
    indexes = connection.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid = ANY(%s::regclass[])"
        " AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [list(tables)],
    ).fetchall()
    for name, _ in indexes:
        connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return [definition for _, definition in indexes]


def _seed_agency(url: str, number: int, accounts: int, hashes: dict[str, str]) -> None:
    """Write agency ``number`` with its users, debtors and ``accounts`` accounts, in one
    transaction of its own.

    Foreign-key triggers are off for this session (it needs a superuser): the generator
    refers only to rows it writes itself, and checking a million references one by one
    would take longer than writing the rows.
    """
    rng = random.Random(f"debtflow-bench-agency-{number}")
    agency = _agency(rng, number)
    users = _users(rng, number, agency, hashes)
    debtors = list(_debtors(rng, agency, -(-accounts // ACCOUNTS_PER_DEBTOR)))
    collectors = [user.id for user in users if user.role == "collector"]
    with psycopg.connect(url) as connection:
        # The JSON columns of half a million debtors: msgspec encodes them several times
        # faster than the json module psycopg uses by default.
        set_json_dumps(msgspec.json.encode, connection)
        connection.execute("SET session_replication_role = replica")
        _copy(connection, "agencies", AgencyRow, [agency])
        _copy(connection, "users", UserRow, users)
        _copy(connection, "debtors", DebtorRow, debtors)
        _copy(
            connection,
            "accounts",
            AccountRow,
            _accounts(rng, agency, debtors, collectors, accounts),
        )


def _copy(
    connection: psycopg.Connection[Any],
    table: str,
    row_type: type[NamedTuple],
    rows: Iterable[NamedTuple],
) -> None:
    """Binary COPY of ``rows`` into the columns of ``table`` that ``row_type`` names, with
    the column types read from the table; a field the table lacks is refused up front."""
    types = dict(
        connection.execute(
            "SELECT attname, atttypid::int FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [table],
        ).fetchall()
    )
    names = row_type._fields
    if unknown := set(names) - types.keys():
        raise RuntimeError(f"{table} has no column {', '.join(sorted(unknown))}")
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with connection.cursor().copy(statement) as copy:
        copy.set_types([types[name] for name in names])
        for row in rows:
            copy.write_row(row)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _moment(rng: random.Random) -> datetime:
    """A time in the three years before the fixed epoch."""
    return _EPOCH - rng.random() * _PLACEMENT_SPAN


def _slug(number: int) -> str:
    return f"bench-{number:02d}"


def _agency(rng: random.Random, number: int) -> AgencyRow:
    return AgencyRow(
        id=_uuid(rng),
        slug=_slug(number),
        name=f"Bench Recovery {number:02d}",
        created_at=_EPOCH - _PLACEMENT_SPAN,
    )


def _users(
    rng: random.Random, number: int, agency: AgencyRow, hashes: dict[str, str]
) -> list[UserRow]:
    """One agency admin and :data:`COLLECTORS_PER_AGENCY` collectors."""
    logins = [(admin_login(number), "agency_admin")] + [
        (collector_login(number, n), "collector") for n in range(1, COLLECTORS_PER_AGENCY + 1)
    ]
    return [
        UserRow(
            id=_uuid(rng),
            agency_id=agency.id,
            email=login.email,
            full_name=f"{login.email.partition('@')[0].title()} of {agency.name}",
            role=role,
            password_hash=hashes[role],
            active=True,
            created_at=agency.created_at,
        )
        for login, role in logins
    ]


def _debtors(rng: random.Random, agency: AgencyRow, count: int) -> Iterator[DebtorRow]:
    """Debtors with one phone and one e-mail address; nine in ten have a postal address."""
    for n in range(count):
        created_at = _moment(rng)
        yield DebtorRow(
            id=_uuid(rng),
            agency_id=agency.id,
            external_id=f"D{n:07d}",
            first_name=rng.choice(_FIRST_NAMES),
            last_name=rng.choice(_LAST_NAMES),
            date_of_birth=date(1950, 1, 1) + timedelta(days=rng.randrange(50 * 365)),
            phones=[{"number": f"+1-202-555-{n % 100:04d}", "kind": "mobile"}],
            emails=[f"debtor{n}@{agency.slug}.example.com"],
            address=_address(n) if n % 10 else None,
            contact_preferences=_NO_CONTACT_LIMITS,
            created_at=created_at,
            updated_at=created_at,
        )


def _address(n: int) -> dict[str, str | None]:
    return {
        "line1": f"{n % 9000 + 1} Main Street",
        "line2": None,
        "city": "Springfield",
        "state": "IL",
        "postal_code": f"{62700 + n % 100:05d}",
        "country": "US",
        "time_zone": "America/Chicago",
    }


def _accounts(
    rng: random.Random,
    agency: AgencyRow,
    debtors: list[DebtorRow],
    collectors: list[uuid.UUID],
    count: int,
) -> Iterator[AccountRow]:
    """Accounts spread over the agency's debtors: a fifth of them assigned to a collector,
    most of them active, balances from $25 to $25,000 (zero when paid in full)."""
    statuses = rng.choices(_STATUSES, _STATUS_WEIGHTS, k=count)
    for n, status in enumerate(statuses):
        placed_at = _moment(rng)
        placed_balance = int(rng.lognormvariate(11, 1.2)) % 2_500_000 + 2_500
        if status == "paid_in_full":
            current_balance = 0
        else:
            current_balance = placed_balance - rng.randrange(placed_balance // 2 + 1)
        yield AccountRow(
            id=_uuid(rng),
            agency_id=agency.id,
            debtor_id=debtors[n // ACCOUNTS_PER_DEBTOR].id,
            external_id=f"A{n:08d}",
            original_creditor=rng.choice(_CREDITORS),
            currency="USD",
            placed_balance=placed_balance,
            current_balance=current_balance,
            charge_off_date=(placed_at - timedelta(days=rng.randrange(30, 720))).date(),
            status=status,
            assigned_collector_id=(
                rng.choice(collectors) if rng.random() < ASSIGNED_SHARE else None
            ),
            placed_at=placed_at,
            updated_at=placed_at + timedelta(days=rng.randrange(90)),
        )
