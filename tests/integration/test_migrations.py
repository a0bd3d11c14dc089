"""Alembic migrations: every revision goes up, down and up again, head is the schema, and
the data migrations do to data written before them what the code does now."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from uuid import UUID, uuid4

import msgspec
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from debtflow_adapters.persistence import create_engine
from debtflow_adapters.persistence.migrate import alembic_config, downgrade, upgrade
from debtflow_adapters.persistence.tables import (
    accounts,
    agencies,
    debtors,
    include_name,
    metadata,
    users,
)
from debtflow_adapters.persistence.unit_of_work import SqlUnitOfWork
from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.ports.audit_log import AuditQuery

T = TypeVar("T")
SRC = Path(__file__).parents[2] / "src"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A database of each dialect that no migration has touched."""
    return request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "fresh_postgres_url"
    )


async def inspect(url: str, look: Callable[[Connection], T]) -> T:
    """What ``look`` finds on a connection to the database at ``url``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


async def test_every_revision_goes_up_down_and_up_again(empty_database_url):
    script = ScriptDirectory.from_config(alembic_config(empty_database_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]
    assert revisions[0] == "0001"
    for revision in revisions:
        await upgrade(empty_database_url, revision)
        await downgrade(empty_database_url, "-1")
        await upgrade(empty_database_url, revision)


# Migrates the database its argument names once standard input gives it the word.
UPGRADE_ON_CUE = """
import asyncio, sys
from debtflow_adapters.persistence.migrate import upgrade
print("ready", flush=True)
sys.stdin.readline()
asyncio.run(upgrade(sys.argv[1]))
"""


@pytest.mark.postgres
async def test_upgrades_run_at_once_on_a_fresh_database_all_succeed(fresh_postgres_url):
    """Deploys start several migrations together (one per replica, or a retried job): all
    but the first wait for it, then find the schema at head. Separate processes, as
    Alembic's module-level context cannot run two migrations in one."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            UPGRADE_ON_CUE,
            fresh_postgres_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"ready\n"
    for process in processes:  # all imported: now they start together
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    for process in processes:
        _, err = await asyncio.wait_for(process.communicate(), 120)
        assert (process.returncode, err.decode()) == (0, "")

    head = ScriptDirectory.from_config(alembic_config(fresh_postgres_url)).get_current_head()
    revisions = await inspect(
        fresh_postgres_url,
        lambda connection: connection.scalars(
            sa.text("SELECT version_num FROM alembic_version")
        ).all(),
    )
    assert revisions == [head]


async def test_downgrading_to_base_leaves_only_alembics_own_table(empty_database_url):
    await upgrade(empty_database_url)
    await downgrade(empty_database_url, "base")

    def leftovers(connection: Connection) -> set[str]:
        names = set(sa.inspect(connection).get_table_names())
        if connection.dialect.name == "postgresql":
            functions = connection.scalars(
                sa.text("SELECT proname FROM pg_proc WHERE proname LIKE 'debtflow%'")
            )
            names |= set(functions)
        return names

    assert await inspect(empty_database_url, leftovers) == {"alembic_version"}


async def test_head_is_exactly_the_tables_module(empty_database_url):
    await upgrade(empty_database_url)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        return compare_metadata(context, metadata)

    assert await inspect(empty_database_url, differences) == []


PLACED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
NIL = UUID(int=0)
# Which partitions hold the entries that migration 0013 wrote (PostgreSQL).
RELEASE_PARTITIONS = (
    "SELECT DISTINCT tableoid::regclass::text FROM audit_log WHERE action = 'account.unassigned'"
)


def this_month() -> str:
    """The name of this month's audit log partition (PostgreSQL)."""
    return f"audit_log_{datetime.now(UTC):y%Ym%m}"


async def seed_assignments(
    connection: AsyncConnection,
    agency_id: UUID,
    staff: list[tuple[UUID, str, str, bool]],
    held: dict[str, tuple[UUID, UUID | None]],
) -> None:
    """An agency with its users (id, name, role, active) and one debtor, whose accounts
    (name: id, collector) were all placed and last changed at PLACED; ``closed`` ones are
    closed, the others active."""
    await connection.execute(
        sa.insert(agencies), {"id": agency_id, "slug": "acme", "name": "Acme", "created_at": PLACED}
    )
    await connection.execute(
        sa.insert(users),
        [
            {
                "id": id_,
                "agency_id": agency_id,
                "email": f"{name}@acme.example",
                "full_name": name,
                "role": role,
                "password_hash": "not a hash",
                "active": active,
                "created_at": PLACED,
            }
            for id_, name, role, active in staff
        ],
    )
    debtor_id = uuid4()
    await connection.execute(
        sa.insert(debtors),
        {
            "id": debtor_id,
            "agency_id": agency_id,
            "first_name": "Dee",
            "last_name": "Btor",
            "phones": [],
            "emails": [],
            "contact_preferences": {},
            "created_at": PLACED,
            "updated_at": PLACED,
        },
    )
    await connection.execute(
        sa.insert(accounts),
        [
            {
                "id": id_,
                "agency_id": agency_id,
                "debtor_id": debtor_id,
                "external_id": name,
                "original_creditor": "Bank",
                "currency": "USD",
                "placed_balance": 1000,
                "current_balance": 1000,
                "status": "closed" if "closed" in name else "active",
                "assigned_collector_id": collector,
                "placed_at": PLACED,
                "updated_at": PLACED,
            }
            for name, (id_, collector) in held.items()
        ],
    )


async def test_0013_unassigns_the_accounts_of_users_who_can_no_longer_work_them(
    empty_database_url,
):
    """Deactivating a collector or changing their role did not unassign their accounts
    before, so a database can hold such assignments: the migration releases them as the
    use cases do now, and audits each the same way (by the platform: no actor)."""
    url = empty_database_url
    await upgrade(url, "0012")
    agency_id, carla, dan, ann = uuid4(), uuid4(), uuid4(), uuid4()
    staff = [
        (carla, "carla", "collector", True),
        (dan, "dan", "collector", False),  # deactivated
        (ann, "ann", "agency_admin", True),  # a collector once
    ]
    collectors = {"carla": carla, "dan": dan, "dan-closed": dan, "ann": ann, "nobody": None}
    held = {name: (uuid4(), collector) for name, collector in collectors.items()}
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    try:
        async with engine.begin() as connection:
            await seed_assignments(connection, agency_id, staff, held)
            if postgres:
                # This month's partition missing, as on a database the daily task has not
                # reached yet: the migration creates it rather than fill the default one.
                await connection.execute(
                    sa.text(f"ALTER TABLE audit_log DETACH PARTITION {this_month()}")
                )
                await connection.execute(sa.text(f"DROP TABLE {this_month()}"))
        started = datetime.now(UTC)
        await upgrade(url, "0013")
        finished = datetime.now(UTC)

        uow = SqlUnitOfWork(engine)
        async with uow:
            after = {name: await uow.accounts.get(id_) for name, (id_, _) in held.items()}
            entries = await uow.audit_log.query(AuditQuery(agency_id=agency_id))
        if postgres:
            async with engine.connect() as connection:
                partitions = set(await connection.scalars(sa.text(RELEASE_PARTITIONS)))
    finally:
        await engine.dispose()

    released = ["dan", "dan-closed", "ann"]
    assert {name: account.assigned_collector_id for name, account in after.items()} == {
        name: None if name in released else collector for name, collector in collectors.items()
    }
    [at] = {entry.occurred_at for entry in entries}
    assert started <= at <= finished
    assert {name: account.updated_at for name, account in after.items()} == {
        name: at if name in released else PLACED for name in collectors
    }
    # What the use cases' release writes for each account, but for its id.
    expected = [
        audit_entry(
            Actor.system(agency_id),
            "account.unassigned",
            entity_id=after[name].id,
            before=msgspec.structs.replace(after[name], assigned_collector_id=collectors[name]),
            after=after[name],
            at=at,
        )
        for name in released
    ]
    assert sorted(
        (msgspec.structs.replace(entry, id=NIL) for entry in entries), key=by_entity
    ) == sorted((msgspec.structs.replace(entry, id=NIL) for entry in expected), key=by_entity)
    assert len({entry.id for entry in entries}) == 3
    assert {entry.id.version for entry in entries} == {7}  # time-ordered, as new_id makes them
    if postgres:
        assert partitions == {this_month()}


def by_entity(entry: AuditEntry) -> UUID:
    return entry.entity_id
