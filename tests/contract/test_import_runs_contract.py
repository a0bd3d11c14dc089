"""The ImportRunRepository contract, through the unit of work, run against memory, SQLite
and PostgreSQL. ``ports.runs`` commits each call in a unit of work of its own."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from debtflow_core.domain.imports import ImportRowError, ImportStatus
from debtflow_core.errors import Conflict, NotFound
from debtflow_core.ports.import_runs import RunPosition
from debtflow_core.ports.placement_writer import PlacementBatch
from tests.support.imports import (
    STORES,
    T0,
    ImportPorts,
    import_ports,
    new_run,
    placement_row,
)


@pytest.fixture(params=STORES)
def ports(request: pytest.FixtureRequest) -> ImportPorts:
    return import_ports(request, request.param)


async def test_a_run_is_stored_once_per_agency_and_content(ports):
    agency = await ports.agency()
    first = await ports.runs.add_or_get(new_run(agency.id, file_name="a.csv"))
    again = await ports.runs.add_or_get(new_run(agency.id, file_name="renamed.csv"))
    other = await ports.runs.add_or_get(new_run(agency.id, sha256="b" * 64))

    assert again == first
    assert first.file_name == "a.csv"
    assert first.progressed_at == first.created_at
    assert type(again.status) is ImportStatus
    assert other.id != first.id
    assert await ports.runs.get(agency.id, first.id) == first


async def test_a_run_is_found_by_its_agency_and_content(ports):
    alpha, beta = await ports.agency("alpha"), await ports.agency("beta")
    assert await ports.runs.get_by_content(alpha.id, "a" * 64) is None
    run = await ports.runs.add_or_get(new_run(alpha.id, sha256="a" * 64))

    assert await ports.runs.get_by_content(alpha.id, "a" * 64) == run
    assert await ports.runs.get_by_content(alpha.id, "b" * 64) is None
    assert await ports.runs.get_by_content(beta.id, "a" * 64) is None


async def test_the_same_content_in_another_agency_is_another_run(ports):
    alpha, beta = await ports.agency("alpha"), await ports.agency("beta")
    a = await ports.runs.add_or_get(new_run(alpha.id))
    b = await ports.runs.add_or_get(new_run(beta.id))

    assert a.id != b.id
    assert await ports.runs.get(beta.id, a.id) is None


async def test_starting_takes_a_new_attempt_and_fences_the_old_one(ports):
    agency = await ports.agency()
    run = await ports.runs.add_or_get(new_run(agency.id))

    started = await ports.runs.start(run.id, attempt=0, at=T0)
    with pytest.raises(Conflict):
        await ports.runs.start(run.id, attempt=0, at=T0)
    taken_over = await ports.runs.start(run.id, attempt=1, at=T0 + timedelta(minutes=5))

    assert (started.status, started.attempt, started.started_at) == (ImportStatus.RUNNING, 1, T0)
    assert started.progressed_at == T0
    assert taken_over.attempt == 2
    assert taken_over.started_at == taken_over.progressed_at == T0 + timedelta(minutes=5)
    with pytest.raises(Conflict):
        await ports.runs.finish(run.id, attempt=1, status=ImportStatus.SUCCEEDED, at=T0)
    with pytest.raises(NotFound):
        await ports.runs.start(uuid.uuid4(), attempt=0, at=T0)


async def test_finishing_records_the_outcome(ports):
    agency = await ports.agency()
    run = await ports.runs.add_or_get(new_run(agency.id))
    await ports.runs.start(run.id, attempt=0, at=T0)

    finished = await ports.runs.finish(
        run.id,
        attempt=1,
        status=ImportStatus.FAILED,
        at=T0 + timedelta(seconds=3),
        ignored_columns=("notes", "Score"),
        failure_reason="required columns are missing: last_name",
    )

    assert finished.status == ImportStatus.FAILED
    assert finished.finished_at == finished.progressed_at == T0 + timedelta(seconds=3)
    assert finished.ignored_columns == ("notes", "Score")
    assert finished.failure_reason == "required columns are missing: last_name"
    assert await ports.runs.get(agency.id, run.id) == finished


async def test_runs_are_listed_newest_first_a_page_at_a_time(ports):
    agency = await ports.agency()
    runs = [
        await ports.runs.add_or_get(
            new_run(agency.id, sha256=f"{n}" * 64, created_at=T0 + timedelta(minutes=n))
        )
        for n in range(5)
    ]

    page = await ports.runs.list(agency.id, after=None, limit=3)
    rest = await ports.runs.list(
        agency.id, after=RunPosition(page[-1].created_at, page[-1].id), limit=3
    )

    assert [r.id for r in page + rest] == [r.id for r in reversed(runs)]


async def test_runs_are_listed_by_status_and_by_source(ports):
    agency = await ports.agency()
    source = uuid.uuid4()
    uploaded = await ports.runs.add_or_get(new_run(agency.id, sha256="1" * 64))
    fetched = await ports.runs.add_or_get(
        new_run(agency.id, sha256="2" * 64, file_source_id=source)
    )
    started = await ports.runs.start(fetched.id, attempt=0, at=T0)

    queued = await ports.runs.list(agency.id, after=None, limit=5, status=ImportStatus.QUEUED)
    of_source = await ports.runs.list(agency.id, after=None, limit=5, file_source_id=source)
    none = await ports.runs.list(
        agency.id, after=None, limit=5, status=ImportStatus.QUEUED, file_source_id=source
    )

    assert [r.id for r in queued] == [uploaded.id]
    assert of_source == [started]
    assert none == []


async def test_stalled_runs_are_uploads_queued_or_running_without_progress_long_enough(ports):
    agency = await ports.agency()
    minute = timedelta(minutes=1)

    async def run(n: int, **fields):
        return await ports.runs.add_or_get(new_run(agency.id, sha256=str(n) * 64, **fields))

    queued = await run(1, created_at=T0)
    running = await run(2, created_at=T0 + minute)
    await ports.runs.start(running.id, attempt=0, at=T0 + 2 * minute)
    restarted = await run(3, created_at=T0 + minute)
    await ports.runs.start(restarted.id, attempt=0, at=T0 + 20 * minute)
    finished = await run(4, created_at=T0)
    await ports.runs.start(finished.id, attempt=0, at=T0)
    await ports.runs.finish(finished.id, attempt=1, status=ImportStatus.SUCCEEDED, at=T0)
    await run(5, created_at=T0, file_source_id=uuid.uuid4())  # its source's poll resumes it
    await run(6, created_at=T0 - 60 * minute)  # too old
    await run(7, created_at=T0 + 15 * minute)  # queued lately

    def claim(limit: int):
        return ports.runs.claim_stalled(
            T0 + 10 * minute, T0 - 30 * minute, limit, at=T0 + 40 * minute
        )

    first = await claim(1)
    rest = await claim(10)

    assert [r.id for r in first] == [queued.id]
    assert [r.id for r in rest] == [running.id]  # the first claim took the queued run
    assert {r.progressed_at for r in first + rest} == {T0 + 40 * minute}
    assert await ports.runs.get(agency.id, running.id) == rest[0]
    assert rest[0].status is ImportStatus.RUNNING


async def test_a_run_whose_batches_keep_committing_is_not_stalled(ports):
    agency = await ports.agency()
    minute = timedelta(minutes=1)
    run = await ports.runs.add_or_get(new_run(agency.id))
    started = await ports.runs.start(run.id, attempt=0, at=T0)

    def claim(now: datetime):
        return ports.runs.claim_stalled(now - 30 * minute, T0 - minute, 10, at=now)

    for n in range(1, 4):
        await ports.writer.write(
            PlacementBatch(
                run_id=run.id,
                attempt=started.attempt,
                agency_id=agency.id,
                rows=[placement_row(n + 1, f"A-{n}")],
                errors=[],
                rows_read=1,
                lines_done=n + 1,
                at=T0 + 20 * n * minute,
            )
        )
        assert await claim(T0 + (20 * n + 15) * minute) == []

    assert [r.id for r in await claim(T0 + 91 * minute)] == [run.id]


async def test_a_claimed_run_is_not_stalled_again_until_another_wait(ports):
    agency = await ports.agency()
    minute = timedelta(minutes=1)
    run = await ports.runs.add_or_get(new_run(agency.id))

    async def claimed(minutes: int) -> list[uuid.UUID]:
        now = T0 + minutes * minute
        runs = await ports.runs.claim_stalled(now - 30 * minute, T0 - minute, 10, at=now)
        return [r.id for r in runs]

    assert await claimed(31) == [run.id]
    assert await claimed(41) == []
    assert await claimed(61) == []
    assert await claimed(62) == [run.id]


async def test_a_run_keeps_how_its_file_is_read(ports):
    agency = await ports.agency()
    mapping = {"Acct No": "account_id", "Balance": "placed_balance"}
    run = await ports.runs.add_or_get(new_run(agency.id, delimiter=";", column_mapping=mapping))

    stored = await ports.runs.get(agency.id, run.id)

    assert stored is not None
    assert (stored.delimiter, stored.column_mapping) == (";", mapping)


async def test_row_errors_are_paged_by_line(ports):
    agency = await ports.agency()
    run = await ports.runs.add_or_get(new_run(agency.id))
    started = await ports.runs.start(run.id, attempt=0, at=T0)
    errors = [
        ImportRowError(line=n, column="placed_balance", reason="bad", value="-1")
        for n in (7, 3, 12, 5)
    ]
    await ports.writer.write(
        PlacementBatch(
            run_id=run.id,
            attempt=started.attempt,
            agency_id=agency.id,
            rows=[],
            errors=errors,
            rows_read=4,
            lines_done=12,
            at=T0,
        )
    )

    first = await ports.runs.errors(run.id, after_line=None, limit=2)
    rest = await ports.runs.errors(run.id, after_line=first[-1].line, limit=10)

    assert [e.line for e in first] == [3, 5]
    assert [e.line for e in rest] == [7, 12]
    assert rest[0] == errors[0]


async def test_a_failed_run_reopens_once_as_a_new_run_of_its_content(ports):
    agency = await ports.agency()
    run = await ports.runs.add_or_get(new_run(agency.id, storage_key="old/key.csv"))
    started = await ports.runs.start(run.id, attempt=0, at=T0)
    with pytest.raises(Conflict):  # running, not failed
        await ports.runs.reopen(run.id, attempt=1, anew=new_run(agency.id))
    error = ImportRowError(line=2, column=None, reason="every row was refused", value=None)
    await ports.writer.write(
        PlacementBatch(
            run_id=run.id,
            attempt=started.attempt,
            agency_id=agency.id,
            rows=[],
            errors=[error],
            rows_read=1,
            lines_done=2,
            at=T0,
        )
    )
    failed = await ports.runs.finish(
        run.id,
        attempt=1,
        status=ImportStatus.FAILED,
        at=T0 + timedelta(seconds=1),
        ignored_columns=("notes",),
        failure_reason="every row was refused",
    )
    later = T0 + timedelta(hours=1)
    anew = new_run(
        agency.id,
        file_name="again.csv",
        storage_key=None,
        created_at=later,
        delimiter=";",
        column_mapping={"Acct No": "account_id"},
    )

    reopened = await ports.runs.reopen(run.id, attempt=1, anew=anew)

    assert reopened == failed.reopened_as(anew)
    assert (reopened.id, reopened.status, reopened.attempt) == (run.id, ImportStatus.QUEUED, 2)
    assert (reopened.created_at, reopened.progressed_at) == (later, later)
    assert (reopened.file_name, reopened.storage_key) == ("again.csv", "old/key.csv")
    assert (reopened.delimiter, reopened.column_mapping) == (";", {"Acct No": "account_id"})
    assert (reopened.rows_read, reopened.rows_failed, reopened.lines_done) == (0, 0, 0)
    assert (reopened.failure_reason, reopened.ignored_columns, reopened.finished_at) == (
        None,
        (),
        None,
    )
    assert await ports.runs.get(agency.id, run.id) == reopened
    assert await ports.runs.errors(run.id, after_line=None, limit=10) == []
    with pytest.raises(Conflict):  # reopened already: a second reopen of attempt 1 loses
        await ports.runs.reopen(run.id, attempt=1, anew=anew)
    with pytest.raises(NotFound):
        await ports.runs.reopen(uuid.uuid4(), attempt=0, anew=anew)


async def test_changes_are_kept_only_when_the_unit_of_work_commits(ports):
    agency = await ports.agency()
    run = await ports.runs.add_or_get(new_run(agency.id))
    queued = await ports.runs.add_or_get(new_run(agency.id, sha256="b" * 64))
    started = await ports.runs.start(run.id, attempt=0, at=T0)
    error = ImportRowError(line=2, column=None, reason="every row was refused", value=None)
    await ports.writer.write(
        PlacementBatch(
            run_id=run.id,
            attempt=started.attempt,
            agency_id=agency.id,
            rows=[],
            errors=[error],
            rows_read=1,
            lines_done=2,
            at=T0,
        )
    )
    failed = await ports.runs.finish(run.id, attempt=1, status=ImportStatus.FAILED, at=T0)
    anew = new_run(agency.id, delimiter=";", created_at=T0 + timedelta(hours=1))

    async with ports.uow() as uow:
        runs = uow.import_runs
        added = await runs.add_or_get(new_run(agency.id, sha256="c" * 64))
        reopened = await runs.reopen(run.id, attempt=1, anew=anew)
        await runs.start(queued.id, attempt=0, at=T0)
        assert await runs.get(agency.id, run.id) == reopened  # its own changes, it sees
        assert await runs.errors(run.id, after_line=None, limit=10) == []
        assert await runs.get(agency.id, added.id) == added
        # Left without a commit.

    assert await ports.runs.get(agency.id, added.id) is None
    assert await ports.runs.get(agency.id, run.id) == failed
    assert await ports.runs.errors(run.id, after_line=None, limit=10) == [error]
    assert await ports.runs.get(agency.id, queued.id) == queued
