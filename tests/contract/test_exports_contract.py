"""The ExportRepository contract, through the unit of work, on every adapter (memory,
SQLite, PostgreSQL): see ``uow_factory``."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from debtflow_core.domain.agency import Agency
from debtflow_core.domain.export import Export, ExportKind, ExportParameters, ExportStatus
from debtflow_core.errors import NotFound
from debtflow_core.ports.exports import ExportPosition

T0 = datetime(2026, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
async def agencies(uow_factory) -> tuple[uuid.UUID, uuid.UUID]:
    """Two committed agencies' ids (in a database, an export needs its agency)."""
    ids = uuid.uuid4(), uuid.uuid4()
    async with uow_factory() as uow:
        for id_ in ids:
            slug = f"a-{id_.hex[:12]}"
            await uow.agencies.add(Agency(id=id_, slug=slug, name=slug, created_at=T0))
        await uow.commit()
    return ids


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


async def test_an_export_round_trips_once_per_id(uow_factory, agencies):
    alpha, beta = agencies
    export = new_export(alpha)
    aging = new_export(
        alpha, kind=ExportKind.AGING, parameters=ExportParameters(as_of=date(2026, 5, 16))
    )
    nightly = new_export(alpha, requested_by=None)

    async with uow_factory() as uow:
        assert await uow.exports.add(export) is True
        assert await uow.exports.add(new_export(alpha, id=export.id, file_name="a.csv")) is False
        await uow.exports.add(aging)
        await uow.exports.add(nightly)
        await uow.commit()

    async with uow_factory() as uow:
        exports = uow.exports
        assert await exports.add(new_export(alpha, id=export.id, file_name="b.csv")) is False
        assert await exports.get(alpha, export.id) == export
        assert await exports.get(alpha, aging.id) == aging
        assert (await exports.get(alpha, nightly.id)).requested_by is None
        assert type((await exports.get(alpha, export.id)).kind) is ExportKind
        assert await exports.get(beta, export.id) is None
        assert await exports.get(alpha, uuid.uuid4()) is None


async def test_start_and_finish_change_an_unfinished_export_only(uow_factory, agencies):
    alpha, _ = agencies
    export = new_export(alpha)
    async with uow_factory() as uow:
        await uow.exports.add(export)
        started = await uow.exports.start(export.id, at=T0 + timedelta(seconds=1))
        restarted = await uow.exports.start(export.id, at=T0 + timedelta(seconds=2))
        done = await uow.exports.finish(
            export.id, status=ExportStatus.SUCCEEDED, at=T0 + timedelta(seconds=3), rows=12
        )
        await uow.commit()

    async with uow_factory() as uow:
        exports = uow.exports
        again = await exports.finish(
            export.id, status=ExportStatus.FAILED, at=T0 + timedelta(seconds=4), failure_reason="x"
        )
        not_restarted = await exports.start(export.id, at=T0 + timedelta(seconds=5))
        with pytest.raises(NotFound):
            await exports.start(uuid.uuid4(), at=T0)
        with pytest.raises(NotFound):
            await exports.finish(uuid.uuid4(), status=ExportStatus.FAILED, at=T0)
        await uow.commit()

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
    async with uow_factory() as uow:
        assert await uow.exports.get(alpha, export.id) == done


async def test_a_failed_export_keeps_its_reason(uow_factory, agencies):
    alpha, _ = agencies
    export = new_export(alpha)
    async with uow_factory() as uow:
        await uow.exports.add(export)
        failed = await uow.exports.finish(
            export.id,
            status=ExportStatus.FAILED,
            at=T0,
            failure_reason="to: must not be before from",
        )
        await uow.commit()

    assert (failed.status, failed.rows, failed.failure_reason) == (
        ExportStatus.FAILED,
        None,
        "to: must not be before from",
    )
    async with uow_factory() as uow:
        assert await uow.exports.get(alpha, export.id) == failed


async def test_lists_are_newest_first_by_keyset_and_filtered(uow_factory, agencies):
    alpha, beta = agencies
    same_time = [new_export(alpha, 5), new_export(alpha, 5)]
    older = new_export(alpha, 1, kind=ExportKind.IMPORTS)
    async with uow_factory() as uow:
        for export in [older, *same_time, new_export(beta, 9)]:
            await uow.exports.add(export)
        await uow.exports.finish(older.id, status=ExportStatus.SUCCEEDED, at=T0, rows=1)
        await uow.commit()

    async with uow_factory() as uow:
        exports = uow.exports
        everything = await exports.list(alpha, after=None, limit=10)
        first = await exports.list(alpha, after=None, limit=2)
        last = first[-1]
        rest = await exports.list(alpha, after=ExportPosition(last.created_at, last.id), limit=10)
        imports = await exports.list(alpha, after=None, limit=10, kind=ExportKind.IMPORTS)
        queued = await exports.list(alpha, after=None, limit=10, status=ExportStatus.QUEUED)
        failed = await exports.list(alpha, after=None, limit=10, status=ExportStatus.FAILED)

    expected = [*sorted(same_time, key=lambda e: e.id, reverse=True), older]
    assert [e.id for e in everything] == [e.id for e in expected]
    assert [e.id for e in first + rest] == [e.id for e in expected]
    assert [e.id for e in imports] == [older.id]
    assert [e.id for e in queued] == [e.id for e in expected[:2]]
    assert failed == []


async def test_old_exports_of_every_agency_are_found_and_deleted(uow_factory, agencies):
    alpha, beta = agencies
    old = [new_export(alpha, 0), new_export(beta, 1), new_export(alpha, 2)]
    recent = new_export(alpha, 10)
    async with uow_factory() as uow:
        for export in [recent, *old]:
            await uow.exports.add(export)
        await uow.commit()

    async with uow_factory() as uow:
        found = await uow.exports.created_before(T0 + timedelta(minutes=10), limit=10)
        limited = await uow.exports.created_before(T0 + timedelta(minutes=10), limit=2)
        assert await uow.exports.delete(old[0].id) is True
        assert await uow.exports.delete(old[0].id) is False
        await uow.commit()

    assert [e.id for e in found] == [e.id for e in old]
    assert [e.id for e in limited] == [e.id for e in old[:2]]
    async with uow_factory() as uow:
        assert await uow.exports.delete(old[0].id) is False
        assert await uow.exports.get(alpha, old[0].id) is None
        left = await uow.exports.created_before(T0 + timedelta(minutes=10), limit=10)
    assert [e.id for e in left] == [e.id for e in old[1:]]


async def test_old_unfinished_exports_of_every_agency_are_found(uow_factory, agencies):
    alpha, beta = agencies
    queued, running = new_export(alpha, 0), new_export(beta, 1)
    finished = new_export(alpha, 2)
    recent = new_export(alpha, 10)
    async with uow_factory() as uow:
        for export in (queued, running, finished, recent):
            await uow.exports.add(export)
        await uow.exports.start(running.id, at=T0 + timedelta(minutes=3))
        await uow.exports.start(finished.id, at=T0 + timedelta(minutes=3))
        await uow.exports.finish(
            finished.id, status=ExportStatus.FAILED, at=T0 + timedelta(minutes=4)
        )
        await uow.commit()

    async with uow_factory() as uow:
        found = await uow.exports.unfinished_before(T0 + timedelta(minutes=10), limit=10)
        limited = await uow.exports.unfinished_before(T0 + timedelta(minutes=10), limit=1)

    assert [(e.id, e.status) for e in found] == [
        (queued.id, ExportStatus.QUEUED),
        (running.id, ExportStatus.RUNNING),
    ]
    assert [e.id for e in limited] == [queued.id]


async def test_nightly_choices_are_kept_per_agency_and_replaced(uow_factory, agencies):
    alpha, beta = agencies
    async with uow_factory() as uow:
        assert await uow.exports.nightly_kinds() == {}
        await uow.exports.choose_nightly_kinds(alpha, (ExportKind.AGING, ExportKind.COLLECTIONS))
        await uow.exports.choose_nightly_kinds(beta, ())
        await uow.commit()
    async with uow_factory() as uow:
        both = await uow.exports.nightly_kinds()
        await uow.exports.choose_nightly_kinds(alpha, (ExportKind.IMPORTS,))
        await uow.commit()

    assert both == {alpha: (ExportKind.AGING, ExportKind.COLLECTIONS), beta: ()}
    async with uow_factory() as uow:
        exports = uow.exports
        assert await exports.nightly_kinds(alpha) == {alpha: (ExportKind.IMPORTS,)}
        assert await exports.nightly_kinds(uuid.uuid4()) == {}
        assert type((await exports.nightly_kinds(alpha))[alpha][0]) is ExportKind


async def test_changes_not_committed_are_not_kept(uow_factory, agencies):
    alpha, _ = agencies
    kept, dropped = new_export(alpha, 0), new_export(alpha, 1)
    async with uow_factory() as uow:
        await uow.exports.add(kept)
        await uow.commit()

    async with uow_factory() as uow:
        await uow.exports.add(dropped)
        await uow.exports.start(kept.id, at=T0 + timedelta(minutes=2))
        await uow.exports.finish(
            kept.id, status=ExportStatus.SUCCEEDED, at=T0 + timedelta(minutes=3), rows=7
        )
        await uow.exports.choose_nightly_kinds(alpha, (ExportKind.AGING,))
    with pytest.raises(LookupError):
        async with uow_factory() as uow:
            assert await uow.exports.delete(kept.id) is True
            raise LookupError("the caller failed before its commit")

    async with uow_factory() as uow:
        assert await uow.exports.get(alpha, dropped.id) is None
        assert await uow.exports.get(alpha, kept.id) == kept
        assert await uow.exports.nightly_kinds() == {}
        # The rolled-back id is free: nothing of it was kept.
        assert await uow.exports.add(dropped) is True


async def test_reads_see_own_writes_and_only_committed_writes_of_others(uow_factory, agencies):
    alpha, _ = agencies
    export = new_export(alpha)
    later = T0 + timedelta(hours=1)
    async with uow_factory() as writer, uow_factory() as reader:
        await writer.exports.add(export)
        assert await writer.exports.get(alpha, export.id) == export
        assert [e.id for e in await writer.exports.list(alpha, after=None, limit=9)] == [export.id]
        started = await writer.exports.start(export.id, at=T0 + timedelta(minutes=1))
        assert await writer.exports.unfinished_before(later, limit=9) == [started]
        done = await writer.exports.finish(
            export.id, status=ExportStatus.SUCCEEDED, at=T0 + timedelta(minutes=2), rows=3
        )
        # Finished inside this transaction is finished: a later start leaves it as it is.
        assert await writer.exports.start(export.id, at=T0 + timedelta(minutes=3)) == done
        assert await writer.exports.get(alpha, export.id) == done
        assert await writer.exports.unfinished_before(later, limit=9) == []
        assert await writer.exports.created_before(later, limit=9) == [done]
        await writer.exports.choose_nightly_kinds(alpha, (ExportKind.IMPORTS,))
        assert await writer.exports.nightly_kinds() == {alpha: (ExportKind.IMPORTS,)}

        assert await reader.exports.get(alpha, export.id) is None
        assert await reader.exports.list(alpha, after=None, limit=9) == []
        assert await reader.exports.nightly_kinds() == {}
        await writer.commit()
        assert await reader.exports.get(alpha, export.id) == done
        assert await reader.exports.nightly_kinds() == {alpha: (ExportKind.IMPORTS,)}

    async with uow_factory() as uow:
        assert await uow.exports.delete(export.id) is True
        assert await uow.exports.get(alpha, export.id) is None
        assert await uow.exports.created_before(later, limit=9) == []
        assert await uow.exports.add(export) is True
