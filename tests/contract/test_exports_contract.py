"""The ExportRepository contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import InMemoryExports
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_adapters.persistence.exports import SqlExportRepository
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.export import Export, ExportKind, ExportParameters, ExportStatus
from debtflow_core.errors import NotFound
from debtflow_core.ports.exports import ExportPosition, ExportRepository

T0 = datetime(2026, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)
STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Store:
    """The repository over one store, and a way to add agencies to that store."""

    def __init__(self, exports: ExportRepository, engine: AsyncEngine | None) -> None:
        self.exports = exports
        self._engine = engine

    async def agencies(self) -> tuple[uuid.UUID, uuid.UUID]:
        """Two new agencies' ids (in the database, where exports need them)."""
        ids = uuid.uuid4(), uuid.uuid4()
        if self._engine is not None:
            async with SqlUnitOfWork(self._engine) as uow:
                for id_ in ids:
                    slug = f"a-{id_.hex[:12]}"
                    await uow.agencies.add(Agency(id=id_, slug=slug, name=slug, created_at=T0))
                await uow.commit()
        return ids


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return Store(InMemoryExports(), None)
    engine: AsyncEngine = request.getfixturevalue(f"{request.param}_engine")
    return Store(SqlExportRepository(engine), engine)


def new_export(agency_id: uuid.UUID, minutes: int = 0, **fields: Any) -> Export:
    id_ = uuid.uuid4()
    values: dict[str, Any] = dict(
        id=id_,
        agency_id=agency_id,
        kind=ExportKind.COLLECTIONS,
        parameters=ExportParameters(from_=date(2026, 5, 1), to=date(2026, 5, 31)),
        status=ExportStatus.QUEUED,
        file_name="collections-2026-05-01-2026-05-31.csv",
        storage_key=f"{agency_id}/exports/2026/05/17/{id_}.csv",
        requested_by=uuid.uuid4(),
        created_at=T0 + timedelta(minutes=minutes),
    )
    values.update(fields)
    return Export(**values)


async def test_an_export_round_trips_once_per_id(store):
    exports, (alpha, beta) = store.exports, await store.agencies()
    export = new_export(alpha)
    aging = new_export(
        alpha, kind=ExportKind.AGING, parameters=ExportParameters(as_of=date(2026, 5, 16))
    )
    nightly = new_export(alpha, requested_by=None)

    assert await exports.add(export) is True
    assert await exports.add(new_export(alpha, id=export.id, file_name="other.csv")) is False
    await exports.add(aging)
    await exports.add(nightly)

    assert await exports.get(alpha, export.id) == export
    assert await exports.get(alpha, aging.id) == aging
    assert (await exports.get(alpha, nightly.id)).requested_by is None
    assert type((await exports.get(alpha, export.id)).kind) is ExportKind
    assert await exports.get(beta, export.id) is None
    assert await exports.get(alpha, uuid.uuid4()) is None


async def test_start_and_finish_change_an_unfinished_export_only(store):
    exports, (alpha, _) = store.exports, await store.agencies()
    export = new_export(alpha)
    await exports.add(export)

    started = await exports.start(export.id, at=T0 + timedelta(seconds=1))
    restarted = await exports.start(export.id, at=T0 + timedelta(seconds=2))
    done = await exports.finish(
        export.id, status=ExportStatus.SUCCEEDED, at=T0 + timedelta(seconds=3), rows=12
    )
    again = await exports.finish(
        export.id, status=ExportStatus.FAILED, at=T0 + timedelta(seconds=4), failure_reason="x"
    )
    not_restarted = await exports.start(export.id, at=T0 + timedelta(seconds=5))

    assert (started.status, started.started_at) == (ExportStatus.RUNNING, T0 + timedelta(seconds=1))
    assert restarted.started_at == T0 + timedelta(seconds=2)
    assert (done.status, done.rows, done.finished_at, done.failure_reason) == (
        ExportStatus.SUCCEEDED,
        12,
        T0 + timedelta(seconds=3),
        None,
    )
    assert again == done
    assert not_restarted == done
    assert await exports.get(alpha, export.id) == done
    with pytest.raises(NotFound):
        await exports.start(uuid.uuid4(), at=T0)
    with pytest.raises(NotFound):
        await exports.finish(uuid.uuid4(), status=ExportStatus.FAILED, at=T0)


async def test_a_failed_export_keeps_its_reason(store):
    exports, (alpha, _) = store.exports, await store.agencies()
    export = new_export(alpha)
    await exports.add(export)

    failed = await exports.finish(
        export.id, status=ExportStatus.FAILED, at=T0, failure_reason="to: must not be before from"
    )

    assert (failed.status, failed.rows, failed.failure_reason) == (
        ExportStatus.FAILED,
        None,
        "to: must not be before from",
    )
    assert await exports.get(alpha, export.id) == failed


async def test_lists_are_newest_first_by_keyset_and_filtered(store):
    exports, (alpha, beta) = store.exports, await store.agencies()
    same_time = [new_export(alpha, 5), new_export(alpha, 5)]
    older = new_export(alpha, 1, kind=ExportKind.IMPORTS)
    for export in [older, *same_time, new_export(beta, 9)]:
        await exports.add(export)
    await exports.finish(older.id, status=ExportStatus.SUCCEEDED, at=T0, rows=1)

    everything = await exports.list(alpha, after=None, limit=10)
    first = await exports.list(alpha, after=None, limit=2)
    last = first[-1]
    rest = await exports.list(alpha, after=ExportPosition(last.created_at, last.id), limit=10)

    expected = [*sorted(same_time, key=lambda e: e.id, reverse=True), older]
    assert [e.id for e in everything] == [e.id for e in expected]
    assert [e.id for e in first + rest] == [e.id for e in expected]
    assert [
        e.id for e in await exports.list(alpha, after=None, limit=10, kind=ExportKind.IMPORTS)
    ] == [older.id]
    assert [
        e.id for e in await exports.list(alpha, after=None, limit=10, status=ExportStatus.QUEUED)
    ] == [e.id for e in expected[:2]]
    assert await exports.list(alpha, after=None, limit=10, status=ExportStatus.FAILED) == []


async def test_old_exports_of_every_agency_are_found_and_deleted(store):
    exports, (alpha, beta) = store.exports, await store.agencies()
    old = [new_export(alpha, 0), new_export(beta, 1), new_export(alpha, 2)]
    recent = new_export(alpha, 10)
    for export in [recent, *old]:
        await exports.add(export)

    found = await exports.created_before(T0 + timedelta(minutes=10), limit=10)
    limited = await exports.created_before(T0 + timedelta(minutes=10), limit=2)

    assert [e.id for e in found] == [e.id for e in old]
    assert [e.id for e in limited] == [e.id for e in old[:2]]
    assert await exports.delete(old[0].id) is True
    assert await exports.delete(old[0].id) is False
    assert await exports.get(alpha, old[0].id) is None
    assert [e.id for e in await exports.created_before(T0 + timedelta(minutes=10), limit=10)] == [
        e.id for e in old[1:]
    ]


async def test_old_unfinished_exports_of_every_agency_are_found(store):
    exports, (alpha, beta) = store.exports, await store.agencies()
    queued, running = new_export(alpha, 0), new_export(beta, 1)
    finished = new_export(alpha, 2)
    recent = new_export(alpha, 10)
    for export in (queued, running, finished, recent):
        await exports.add(export)
    await exports.start(running.id, at=T0 + timedelta(minutes=3))
    await exports.start(finished.id, at=T0 + timedelta(minutes=3))
    await exports.finish(finished.id, status=ExportStatus.FAILED, at=T0 + timedelta(minutes=4))

    found = await exports.unfinished_before(T0 + timedelta(minutes=10), limit=10)
    limited = await exports.unfinished_before(T0 + timedelta(minutes=10), limit=1)

    assert [(e.id, e.status) for e in found] == [
        (queued.id, ExportStatus.QUEUED),
        (running.id, ExportStatus.RUNNING),
    ]
    assert [e.id for e in limited] == [queued.id]


async def test_nightly_choices_are_kept_per_agency_and_replaced(store):
    exports, (alpha, beta) = store.exports, await store.agencies()

    assert await exports.nightly_kinds() == {}
    await exports.choose_nightly_kinds(alpha, (ExportKind.AGING, ExportKind.COLLECTIONS))
    await exports.choose_nightly_kinds(beta, ())
    both = await exports.nightly_kinds()
    await exports.choose_nightly_kinds(alpha, (ExportKind.IMPORTS,))

    assert both == {alpha: (ExportKind.AGING, ExportKind.COLLECTIONS), beta: ()}
    assert await exports.nightly_kinds(alpha) == {alpha: (ExportKind.IMPORTS,)}
    assert await exports.nightly_kinds(uuid.uuid4()) == {}
    assert type((await exports.nightly_kinds(alpha))[alpha][0]) is ExportKind
