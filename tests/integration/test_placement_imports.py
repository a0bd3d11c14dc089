"""Importing placement files end to end through the use case, on every store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_core.actor import Actor
from debtflow_core.domain.imports import ImportRun, ImportStatus
from debtflow_core.domain.user import Role
from debtflow_core.errors import NotFound, PermissionDenied
from debtflow_core.ports.audit_log import AuditQuery
from debtflow_core.ports.placement_writer import BatchOutcome, PlacementBatch, PlacementWriter
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.imports import (
    CheckPlacementFile,
    GetImportRun,
    ImportFile,
    ImportPlacementFile,
    ImportProgress,
    ListImportErrors,
    ListImportRuns,
)
from tests.support.imports import HEADER, STORES, T0, ImportPorts, import_ports, placement_text


@pytest.fixture(params=STORES)
def ports(request: pytest.FixtureRequest) -> ImportPorts:
    return import_ports(request, request.param)


@pytest.fixture
async def admin(ports: ImportPorts) -> Actor:
    agency = await ports.agency()
    return Actor.system(agency.id)


def importer(ports: ImportPorts, writer: PlacementWriter | None = None) -> ImportPlacementFile:
    return ImportPlacementFile(
        writer or ports.writer, ports.uow(), FixedClock(T0), InMemoryTelemetry()
    )


def write(tmp_path: Path, text: str | bytes, name: str = "placement.csv") -> ImportFile:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return ImportFile(path=path, file_name=name, storage_key=f"backups/{name}")


async def state(ports: ImportPorts, agency_id: uuid.UUID) -> list[tuple]:
    """The agency's accounts by external id, with what an import gives them."""
    return await ports.accounts(agency_id)


async def test_a_file_imports_with_its_run_recorded_and_audited(ports, admin, tmp_path):
    seen: list[ImportProgress] = []
    run = await importer(ports).execute(
        admin, write(tmp_path, placement_text(2500, bad_every=100)), seen.append
    )

    assert run.status == ImportStatus.PARTIALLY_FAILED
    assert (run.rows_read, run.rows_created, run.rows_updated, run.rows_failed) == (
        2500,
        2475,
        0,
        25,
    )
    assert run.storage_key == "backups/placement.csv"
    assert (run.started_at, run.finished_at) == (T0, T0)
    assert [p.rows_read for p in seen] == [1000, 2000, 2500]
    assert seen[-1].rows_failed == 25
    page = await ListImportErrors(ports.uow()).execute(admin, run.id, limit=10)
    assert [e.line for e in page.items] == [101 + 100 * n for n in range(10)]
    assert page.items[0].column == "placed_balance"
    async with ports.uow() as uow:
        audit = await uow.audit_log.query(AuditQuery(agency_id=admin.agency_id))
    assert {e.action for e in audit} == {
        "import_run.queued",
        "import_run.started",
        "import_run.finished",
    }
    finished = next(e for e in audit if e.action == "import_run.finished")
    assert finished.after["rows_created"] == 2475


async def test_the_same_file_twice_imports_once(ports, admin, tmp_path):
    command = write(tmp_path, placement_text(30))
    first = await importer(ports).execute(admin, command)
    again = await importer(ports).execute(admin, command)
    renamed = await importer(ports).execute(
        admin, write(tmp_path, placement_text(30), name="renamed.csv")
    )

    assert first.status == ImportStatus.SUCCEEDED
    assert again == first
    assert renamed == first
    assert len(await state(ports, admin.agency_id)) == 30


async def test_a_changed_file_updates_the_accounts_it_names(ports, admin, tmp_path):
    await importer(ports).execute(admin, write(tmp_path, placement_text(20)))
    second = await importer(ports).execute(
        admin, write(tmp_path, placement_text(20, start=10), name="next.csv")
    )

    assert (second.rows_created, second.rows_updated) == (10, 10)
    assert len(await state(ports, admin.agency_id)) == 30


async def test_half_bad_rows_import_the_good_half(ports, admin, tmp_path):
    run = await importer(ports).execute(admin, write(tmp_path, placement_text(200, bad_every=2)))

    assert run.status == ImportStatus.PARTIALLY_FAILED
    assert (run.rows_created, run.rows_failed) == (100, 100)


async def test_a_file_of_bad_rows_only_fails(ports, admin, tmp_path):
    run = await importer(ports).execute(admin, write(tmp_path, placement_text(5, bad_every=1)))

    assert (run.status, run.failure_reason) == (ImportStatus.FAILED, "every row was refused")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty: a placement file starts with a header row"),
        (
            f"{HEADER}\nA-1,D-1,Zo\xeb,M\xfcller,NW,1.00\n".encode("latin-1"),
            "the file is not UTF-8 text (byte 0xEB at offset",
        ),
        (
            f'{HEADER}\nA-1,D-1,Ada,Lovelace,"NW,1.00,USD,,TX,Austin,1 Main,78701\n'.encode(),
            "a quoted field is never closed",
        ),
        (
            b"account_id,first_name,placed_balance\nA-1,Ada,1.00\n",
            "required columns are missing: last_name, original_creditor",
        ),
    ],
    ids=["empty", "latin-1", "unbalanced-quote", "missing-column"],
)
async def test_an_unreadable_file_fails_the_run_with_one_reason(
    ports, admin, tmp_path, content, reason
):
    run = await importer(ports).execute(admin, write(tmp_path, content))

    assert run.status == ImportStatus.FAILED
    assert run.failure_reason.startswith(reason)
    assert run.rows_read == 0
    assert await state(ports, admin.agency_id) == []


async def test_a_header_only_file_succeeds_empty(ports, admin, tmp_path):
    run = await importer(ports).execute(admin, write(tmp_path, HEADER + "\r\n"))

    assert (run.status, run.rows_read) == (ImportStatus.SUCCEEDED, 0)


async def test_unknown_columns_are_reported_once_on_the_run(ports, admin, tmp_path):
    text = placement_text(3).replace(HEADER, HEADER + ",Notes,Score", 1)
    text = text.replace(",78701\r\n", ",78701,hi,7\r\n")
    run = await importer(ports).execute(admin, write(tmp_path, text))

    assert run.status == ImportStatus.SUCCEEDED
    assert run.ignored_columns == ("Notes", "Score")


async def test_an_account_named_twice_keeps_the_later_row(ports, admin, tmp_path):
    lines = placement_text(1500).splitlines()
    text = "\r\n".join([*lines, lines[6].replace(",5.25,", ",77.00,"), lines[1400]]) + "\r\n"
    run = await importer(ports).execute(admin, write(tmp_path, text))

    assert (run.rows_read, run.rows_created, run.rows_failed) == (1502, 1500, 2)
    page = await ListImportErrors(ports.uow()).execute(admin, run.id)
    assert [(e.line, e.reason) for e in page.items] == [
        (7, "superseded by line 1502, which has the same account_id"),
        (1401, "superseded by line 1503, which has the same account_id"),
    ]
    accounts = {a[0]: a for a in await state(ports, admin.agency_id)}
    assert accounts["A-000005"][2] == 7700


class Killed(BaseException):
    """A worker killed mid-import: nothing of the import's own handles it. (Not a
    KeyboardInterrupt, which asyncio would raise out of the tests' shared event loop.)"""


class CrashingWriter(PlacementWriter):
    """Writes ``batches`` batches, then dies as a killed worker would."""

    def __init__(self, writer: PlacementWriter, batches: int) -> None:
        self._writer = writer
        self._left = batches

    async def write(self, batch: PlacementBatch) -> BatchOutcome:
        if not self._left:
            raise Killed
        self._left -= 1
        return await self._writer.write(batch)


async def test_a_crash_mid_file_and_a_rerun_end_as_one_clean_import(ports, admin, tmp_path):
    text = placement_text(3500, bad_every=50)
    command = write(tmp_path, text)
    with pytest.raises(Killed):
        await importer(ports, CrashingWriter(ports.writer, 2)).execute(admin, command)
    (stuck,) = await ports.runs.list(admin.agency_id, after=None, limit=5)
    assert (stuck.status, stuck.lines_done) == (ImportStatus.RUNNING, 2001)

    rerun = await importer(ports).execute(admin, command)

    other = Actor.system((await ports.agency("clean")).id)
    clean = await importer(ports).execute(other, write(tmp_path, text, name="clean.csv"))
    assert rerun.id == stuck.id
    assert rerun.attempt == 2
    assert counts(rerun) == counts(clean) == (3500, 3430, 0, 70)
    assert rerun.status == clean.status == ImportStatus.PARTIALLY_FAILED
    assert await state(ports, admin.agency_id) == await state(ports, other.agency_id)
    errors = await ports.runs.errors(rerun.id, after_line=None, limit=200)
    assert errors == await ports.runs.errors(clean.id, after_line=None, limit=200)


def counts(run: ImportRun) -> tuple[int, int, int, int]:
    return (run.rows_read, run.rows_created, run.rows_updated, run.rows_failed)


async def test_only_agency_admins_import(ports, admin, tmp_path):
    collector = Actor(user_id=uuid.uuid4(), agency_id=admin.agency_id, role=Role.COLLECTOR)
    with pytest.raises(PermissionDenied):
        await importer(ports).execute(collector, write(tmp_path, placement_text(1)))


async def test_a_dry_run_reports_without_writing(ports, admin, tmp_path):
    check = await CheckPlacementFile().execute(
        write(tmp_path, placement_text(300, bad_every=3)), max_errors=5
    )

    assert (check.rows_read, check.rows_valid, check.rows_failed) == (300, 200, 100)
    assert [e.line for e in check.errors] == [4, 7, 10, 13, 16]
    assert check.failure_reason is None
    assert await state(ports, admin.agency_id) == []
    assert await ports.runs.list(admin.agency_id, after=None, limit=5) == []


async def test_runs_and_their_errors_are_listed_a_page_at_a_time(ports, admin, tmp_path):
    runs = [
        await importer(ports).execute(
            admin, write(tmp_path, placement_text(6, bad_every=2, start=n), name=f"{n}.csv")
        )
        for n in range(3)
    ]
    listed = ListImportRuns(ports.uow())
    first = await listed.execute(admin, limit=2)
    rest = await listed.execute(admin, cursor=first.next_cursor, limit=2)
    errors = ListImportErrors(ports.uow())
    page = await errors.execute(admin, runs[0].id, limit=2)
    last = await errors.execute(admin, runs[0].id, cursor=page.next_cursor, limit=2)

    assert {r.id for r in first.items + rest.items} == {r.id for r in runs}
    assert rest.next_cursor is None
    assert [e.line for e in page.items + last.items] == [3, 5, 7]
    assert last.next_cursor is None
    assert await GetImportRun(ports.uow()).execute(admin, runs[1].id) == runs[1]
    stranger = Actor.system(uuid.uuid4())
    with pytest.raises(NotFound):
        await GetImportRun(ports.uow()).execute(stranger, runs[1].id)
    with pytest.raises(NotFound):
        await errors.execute(stranger, runs[1].id)


async def test_an_import_stores_a_debtors_emails_as_the_debtor_api_does(ports, admin, tmp_path):
    emails = ("Ada@Example.COM", "ada@example.com", " Bob@Example.com ")
    row = f'A-1,D-1,Ada,Lovelace,Northwind,1.00,USD,,TX,Austin,1 Main St,78701,"{";".join(emails)}"'
    text = f"{HEADER},emails\r\n{row}\r\n"
    run = await importer(ports).execute(admin, write(tmp_path, text))
    created = await CreateDebtor(ports.uow(), FixedClock(T0)).execute(
        admin, NewDebtor(first_name="Ada", last_name="Lovelace", emails=emails)
    )

    assert run.status == ImportStatus.SUCCEEDED
    async with ports.uow() as uow:
        imported = await uow.debtors.get_by_external_id(admin.agency_id, "D-1")
    assert imported is not None
    assert imported.emails == created.emails == ("ada@example.com", "bob@example.com")
