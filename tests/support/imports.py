"""Placement-import test helpers: the import ports over every store, and placement rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import (
    InMemoryImportRuns,
    InMemoryImportStore,
    InMemoryPlacementWriter,
    InMemoryStore,
    InMemoryUnitOfWork,
)
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_adapters.persistence.imports import SqlImportRunRepository, placement_writer
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.imports import ImportRun, ImportStatus
from debtflow_core.placement import PlacementRow
from debtflow_core.ports.import_runs import ImportRunRepository
from debtflow_core.ports.placement_writer import PlacementWriter
from debtflow_core.ports.unit_of_work import UnitOfWork

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class ImportPorts:
    """The import ports over one store, and units of work over the same data."""

    name: str
    runs: ImportRunRepository
    writer: PlacementWriter
    uow: Callable[[], UnitOfWork]

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
        return ImportPorts(
            name=store,
            runs=InMemoryImportRuns(imports),
            writer=InMemoryPlacementWriter(data, imports),
            uow=lambda: InMemoryUnitOfWork(data),
        )
    engine: AsyncEngine = request.getfixturevalue(f"{store}_engine")
    return ImportPorts(
        name=store,
        runs=SqlImportRunRepository(engine),
        writer=placement_writer(engine),
        uow=lambda: SqlUnitOfWork(engine),
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
