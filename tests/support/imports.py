"""Placement-import test helpers: the import ports over every store, and placement rows."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import (
    InMemoryImportStore,
    InMemoryPlacementWriter,
    InMemoryStore,
    InMemoryUnitOfWork,
)
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_adapters.persistence.imports import make_placement_writer
from debtflow_adapters.persistence.tables import accounts, debtors
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.imports import ImportRun, ImportStatus
from debtflow_core.placement import PlacementRow
from debtflow_core.ports.placement_writer import PlacementWriter
from debtflow_core.ports.unit_of_work import UnitOfWork

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class CommittedRuns:
    """The import runs of the units of work of ``uow``, each call in a unit of work of its
    own that commits it: for tests that set runs up, or look at them, around the code they
    test."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        async def committed(*args: Any, **kwargs: Any) -> Any:
            async with self._uow() as uow:
                result = await getattr(uow.import_runs, method)(*args, **kwargs)
                await uow.commit()
            return result

        return committed


@dataclass
class ImportPorts:
    """The placement writer over one store, units of work over the same data, and their
    import runs a call at a time (:class:`CommittedRuns`)."""

    name: str
    writer: PlacementWriter
    uow: Callable[[], UnitOfWork]
    accounts: Callable[[uuid.UUID], Awaitable[list[tuple[Any, ...]]]]

    @property
    def runs(self) -> CommittedRuns:
        return CommittedRuns(self.uow)

    async def agency(self, slug: str = "alpha") -> Agency:
        agency = Agency(id=uuid.uuid4(), slug=slug, name=slug.title(), created_at=T0)
        async with self.uow() as uow:
            await uow.agencies.add(agency)
            await uow.commit()
        return agency


def import_ports(request: pytest.FixtureRequest, store: str) -> ImportPorts:
    """The ports over ``store`` (memory, sqlite or postgres), its database fixture taken
    from ``request`` only when it needs one."""
    if store == "memory":
        data, imports = InMemoryStore(), InMemoryImportStore()

        async def memory_accounts(agency_id: uuid.UUID) -> list[tuple[Any, ...]]:
            return sorted(
                (
                    a.external_id,
                    data.debtors[a.debtor_id].external_id,
                    a.placed_balance,
                    a.current_balance,
                    a.charge_off_date,
                )
                for a in data.accounts.values()
                if a.agency_id == agency_id
            )

        return ImportPorts(
            name=store,
            writer=InMemoryPlacementWriter(data, imports),
            uow=lambda: InMemoryUnitOfWork(data),
            accounts=memory_accounts,
        )
    engine: AsyncEngine = request.getfixturevalue(f"{store}_engine")

    async def sql_accounts(agency_id: uuid.UUID) -> list[tuple[Any, ...]]:
        statement = (
            sa.select(
                accounts.c.external_id,
                debtors.c.external_id,
                accounts.c.placed_balance,
                accounts.c.current_balance,
                accounts.c.charge_off_date,
            )
            .join(debtors, debtors.c.id == accounts.c.debtor_id)
            .where(accounts.c.agency_id == agency_id)
        )
        async with engine.connect() as connection:
            return sorted(tuple(row) for row in await connection.execute(statement))

    return ImportPorts(
        name=store,
        writer=make_placement_writer(engine),
        uow=lambda: SqlUnitOfWork(engine),
        accounts=sql_accounts,
    )


STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def new_run(agency_id: uuid.UUID, sha256: str = "a" * 64, **fields: Any) -> ImportRun:
    values: dict[str, Any] = dict(
        id=uuid.uuid4(),
        agency_id=agency_id,
        file_source_id=None,
        file_name="placement.csv",
        sha256=sha256,
        storage_key=None,
        status=ImportStatus.QUEUED,
        rows_read=0,
        rows_created=0,
        rows_updated=0,
        rows_failed=0,
        created_at=T0,
        started_at=None,
        finished_at=None,
    )
    values.update(fields)
    return ImportRun(**values)


def placement_row(line: int, account_id: str, **fields: Any) -> PlacementRow:
    values: dict[str, Any] = dict(
        line=line,
        account_id=account_id,
        original_creditor="Northwind Bank",
        placed_balance=123_456,
        currency="USD",
        charge_off_date=None,
        first_delinquency_date=None,
        itemization_date=None,
        last_payment_date=None,
        debtor_id=f"D-{account_id}",
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=None,
        phones=("+1 512 555 0100",),
        emails=("ada@example.com",),
        address_line1="1 Main St",
        address_line2=None,
        city="Austin",
        state="TX",
        zip="78701",
        country="US",
    )
    values.update(fields)
    return PlacementRow(**values)


HEADER = (
    "account_id,debtor_id,first_name,last_name,original_creditor,placed_balance,currency,"
    "charge_off_date,state,city,address_line1,zip"
)


def placement_text(count: int, *, bad_every: int = 0, start: int = 0) -> str:
    """A placement file of ``count`` rows (every ``bad_every``-th with a negative balance),
    two accounts per debtor."""
    lines = [HEADER]
    for n in range(start, start + count):
        balance = "-5.00" if bad_every and n % bad_every == bad_every - 1 else f"{n % 997}.25"
        lines.append(
            f"A-{n:06d},D-{n // 2:06d},Ada,Lovelace,Northwind,{balance},USD,2024-03-01,"
            "TX,Austin,1 Main St,78701"
        )
    return "\r\n".join(lines) + "\r\n"
