"""Uploading a placement file: recorded queued, backed up, handed to the workers, and the
worker's side that imports the queued run."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import pytest

from debtflow_adapters.local.object_storage import LocalObjectStorage
from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_adapters.memory import (
    FixedClock,
    InMemoryImportStore,
    InMemoryPlacementWriter,
    InMemoryStore,
    InMemoryUnitOfWork,
)
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_core.actor import Actor
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.domain.user import Role
from debtflow_core.errors import (
    NotFound,
    PermissionDenied,
    StorageUnavailable,
    ValidationFailed,
)
from debtflow_core.ports.audit_log import AuditLogRepository, AuditQuery
from debtflow_core.ports.import_runs import ImportRunRepository
from debtflow_core.ports.placement_writer import PlacementBatch
from debtflow_core.use_cases.imports import (
    IMPORT_PLACEMENT_FILE,
    ImportFile,
    ImportPlacementFile,
    ImportQueuedRun,
    QueuePlacementUpload,
    ResumeStalledImports,
    UploadedFile,
)
from tests.support.file_fakes import FakeObjectStorage
from tests.support.imports import T0, CommittedRuns, placement_row, placement_text


class AuditLogDown(Exception):
    """The audit log refused an entry."""


class RefusingAuditLog(AuditLogRepository):
    """``log``, refusing the entries of ``actions``."""

    def __init__(self, log: AuditLogRepository, actions: frozenset[str]) -> None:
        self._log = log
        self._actions = actions

    async def add(self, entry: AuditEntry) -> None:
        if entry.action in self._actions:
            raise AuditLogDown(entry.action)
        await self._log.add(entry)

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        return await self._log.query(query)


class AuditRefusingUnitOfWork(InMemoryUnitOfWork):
    """An in-memory unit of work whose audit log refuses the entries of ``actions``."""

    def __init__(self, store: InMemoryStore, *actions: str) -> None:
        super().__init__(store)
        self._actions = frozenset(actions)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.audit_log = RefusingAuditLog(self.audit_log, self._actions)
        return self


class Setup:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.store, self.imports = InMemoryStore(), InMemoryImportStore()
        self.agency = Agency(id=uuid.uuid4(), slug="acme", name="Acme", created_at=T0)
        self.store.agencies[self.agency.id] = self.agency
        self.admin = Actor.system(self.agency.id)
        self.runs = CommittedRuns(lambda: InMemoryUnitOfWork(self.store))
        self.storage = FakeObjectStorage(self.log)
        self.jobs = InMemoryJobQueue()
        self.clock = clock = FixedClock(T0)
        uow = InMemoryUnitOfWork(self.store)
        self.writer = InMemoryPlacementWriter(self.store, self.imports)
        self.queue = self.uploader(uow)
        self.resume = ResumeStalledImports(self.jobs, uow, clock)
        self.import_file = self.importer(uow)
        self.run_queued = ImportQueuedRun(self.storage, self.import_file, uow)

    def importer(self, uow: InMemoryUnitOfWork) -> ImportPlacementFile:
        return ImportPlacementFile(self.writer, uow, self.clock, InMemoryTelemetry())

    def uploader(self, uow: InMemoryUnitOfWork) -> QueuePlacementUpload:
        return QueuePlacementUpload(self.storage, self.jobs, uow, self.clock)

    def audited(self, run_id: uuid.UUID) -> list[str]:
        """The actions of the run's audit entries, in the order they were written."""
        return [e.action for e in self.store.audit_log.values() if e.entity_id == run_id]

    async def run_jobs(self) -> None:
        jobs, self.jobs.jobs[:] = list(self.jobs.jobs), []
        for task, arguments in jobs:
            assert task == IMPORT_PLACEMENT_FILE
            await self.run_queued.execute(
                uuid.UUID(str(arguments["agency_id"])), uuid.UUID(str(arguments["run_id"]))
            )


@pytest.fixture
def setup() -> Setup:
    return Setup()


def saved(tmp_path: Path, text: str, name: str = "upload.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def test_an_upload_is_queued_backed_up_and_imported_by_the_job(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(3)), file_name="C:\\x\\may.csv")

    queued = await setup.queue.execute(setup.admin, upload)

    run = queued.run
    assert (queued.duplicate, run.status, run.file_name) == (False, ImportStatus.QUEUED, "may.csv")
    assert run.storage_key == f"{setup.agency.id}/uploads/{T0:%Y/%m/%d}/{run.sha256}-may.csv"
    assert setup.storage.objects[run.storage_key] == upload.path.read_bytes()
    assert setup.jobs.jobs == [
        (IMPORT_PLACEMENT_FILE, {"run_id": str(run.id), "agency_id": str(setup.agency.id)})
    ]
    await setup.run_jobs()
    done = await setup.runs.get(setup.agency.id, run.id)
    assert done is not None
    assert (done.status, done.rows_created) == (ImportStatus.SUCCEEDED, 3)


async def test_the_same_content_again_is_the_earlier_run_and_queues_nothing(setup, tmp_path):
    first = await setup.queue.execute(
        setup.admin, UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    )
    await setup.run_jobs()

    again = await setup.queue.execute(
        setup.admin,
        UploadedFile(path=saved(tmp_path, placement_text(2), "b.csv"), file_name="b.csv"),
    )

    assert again.duplicate
    assert (again.run.id, again.run.status) == (first.run.id, ImportStatus.SUCCEEDED)
    assert setup.jobs.jobs == []
    assert len(setup.storage.objects) == 1


async def test_a_run_still_queued_is_backed_up_and_queued_again(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    first = await setup.queue.execute(setup.admin, upload)
    setup.jobs.jobs.clear()  # the job was lost
    setup.storage.objects.clear()

    again = await setup.queue.execute(setup.admin, upload)

    assert again.duplicate and again.run.id == first.run.id
    assert first.run.storage_key in setup.storage.objects
    assert len(setup.jobs.jobs) == 1


async def test_the_job_reads_the_file_with_the_uploads_options(setup, tmp_path):
    text = placement_text(2).replace(",", ";").replace("account_id", "Acct")
    upload = UploadedFile(
        path=saved(tmp_path, text),
        file_name="semi.csv",
        delimiter=";",
        column_mapping={"Acct": "account_id"},
    )

    queued = await setup.queue.execute(setup.admin, upload)
    await setup.run_jobs()

    done = await setup.runs.get(setup.agency.id, queued.run.id)
    assert done is not None
    assert (done.status, done.rows_created) == (ImportStatus.SUCCEEDED, 2)


async def test_a_job_for_a_finished_run_changes_nothing(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    queued = await setup.queue.execute(setup.admin, upload)
    await setup.run_jobs()
    done = await setup.runs.get(setup.agency.id, queued.run.id)

    assert await setup.run_queued.execute(setup.agency.id, queued.run.id) == done


async def test_a_missing_run_or_backup_is_not_found(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    queued = await setup.queue.execute(setup.admin, upload)
    setup.storage.objects.clear()

    with pytest.raises(NotFound):
        await setup.run_queued.execute(setup.agency.id, uuid.uuid4())
    with pytest.raises(NotFound):
        await setup.run_queued.execute(uuid.uuid4(), queued.run.id)
    with pytest.raises(NotFound):
        await setup.run_queued.execute(setup.agency.id, queued.run.id)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"delimiter": ";;"}, "delimiter"),
        ({"delimiter": '"'}, "delimiter"),
        ({"delimiter": "\x00"}, "delimiter"),
        ({"column_mapping": {"a\x00b": "account_id"}}, "column_mapping"),
        ({"column_mapping": {"Acct": "acct_no"}}, "column_mapping"),
    ],
)
async def test_bad_options_are_refused_before_anything_is_stored(setup, tmp_path, options, field):
    upload = UploadedFile(path=saved(tmp_path, placement_text(1)), file_name="a.csv", **options)

    with pytest.raises(ValidationFailed) as refused:
        await setup.queue.execute(setup.admin, upload)

    assert refused.value.field == field
    assert setup.storage.objects == {}
    assert await setup.runs.list(setup.agency.id, after=None, limit=5) == []


async def test_the_run_is_named_by_the_files_last_path_component_without_controls(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(1)), file_name="../a/b\x00c.csv")

    queued = await setup.queue.execute(setup.admin, upload)

    assert queued.run.file_name == "bc.csv"


async def test_a_long_file_name_is_shortened_in_the_key_to_fit_local_storage(setup, tmp_path):
    links = SignedLinks(b"k" * 32, base_url="http://debtflow.test", clock=setup.clock)
    storage = LocalObjectStorage(tmp_path / "objects", links)
    queue = QueuePlacementUpload(storage, setup.jobs, InMemoryUnitOfWork(setup.store), setup.clock)
    name = "a" * 250 + ".csv"
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name=name)

    queued = await queue.execute(setup.admin, upload)

    key = queued.run.storage_key
    assert queued.run.file_name == name
    assert key is not None
    assert len(key.rsplit("/", 1)[1]) == 255
    assert key.endswith(f"{queued.run.sha256}-{'a' * 190}")
    assert await storage.exists(key)


async def test_only_an_agency_admin_uploads(setup, tmp_path):
    collector = Actor(user_id=uuid.uuid4(), agency_id=setup.agency.id, role=Role.COLLECTOR)
    upload = UploadedFile(path=saved(tmp_path, placement_text(1)), file_name="a.csv")

    with pytest.raises(PermissionDenied):
        await setup.queue.execute(collector, upload)


async def test_an_upload_whose_job_was_lost_is_queued_again_after_half_an_hour(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    queued = (await setup.queue.execute(setup.admin, upload)).run
    setup.jobs.jobs.clear()  # the job was lost

    setup.clock.advance(timedelta(minutes=29))
    assert await setup.resume.execute() == 0
    setup.clock.advance(timedelta(minutes=2))
    assert await setup.resume.execute() == 1
    setup.clock.advance(timedelta(minutes=10))
    assert await setup.resume.execute() == 0  # its new job has not had its chance yet
    await setup.run_jobs()
    done = await setup.runs.get(setup.agency.id, queued.id)
    assert done is not None and done.status is ImportStatus.SUCCEEDED


async def test_a_backlog_is_not_queued_again_twice_within_half_an_hour(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    await setup.queue.execute(setup.admin, upload)  # its job waits behind others

    queued_again_at = []
    for sweep in range(1, 10):
        setup.clock.advance(timedelta(minutes=10))
        if await setup.resume.execute():
            queued_again_at.append(sweep * 10)

    assert queued_again_at == [40, 80]
    assert len(setup.jobs.jobs) == 3


async def test_a_run_whose_worker_died_is_resumed_and_an_old_one_left(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    queued = (await setup.queue.execute(setup.admin, upload)).run
    setup.jobs.jobs.clear()
    started = await setup.runs.start(queued.id, attempt=queued.attempt, at=setup.clock.now())
    setup.clock.advance(timedelta(minutes=20))
    await setup.writer.write(  # a first batch, then the worker died
        PlacementBatch(
            run_id=started.id,
            attempt=started.attempt,
            agency_id=started.agency_id,
            rows=[],
            errors=[],
            rows_read=0,
            lines_done=1,
            at=setup.clock.now(),
        )
    )

    setup.clock.advance(timedelta(minutes=29))
    assert await setup.resume.execute() == 0  # 49 minutes after its start, 29 after its batch
    setup.clock.advance(timedelta(minutes=2))
    assert await setup.resume.execute() == 1
    await setup.run_jobs()
    done = await setup.runs.get(setup.agency.id, queued.id)
    assert done is not None and (done.status, done.attempt) == (ImportStatus.SUCCEEDED, 2)

    late = UploadedFile(path=saved(tmp_path, placement_text(3), "b.csv"), file_name="b.csv")
    await setup.queue.execute(setup.admin, late)
    setup.jobs.jobs.clear()
    setup.clock.advance(timedelta(days=1, minutes=1))
    assert await setup.resume.execute() == 0  # an operator looks at a day-old run


SEMICOLONS = placement_text(2).replace(",", ";")


async def test_a_failed_upload_sent_again_with_how_to_read_it_is_imported_anew(setup, tmp_path):
    path = saved(tmp_path, SEMICOLONS)
    first = await setup.queue.execute(setup.admin, UploadedFile(path=path, file_name="a.csv"))
    await setup.run_jobs()
    failed = await setup.runs.get(setup.agency.id, first.run.id)
    assert failed is not None and failed.status is ImportStatus.FAILED

    again = await setup.queue.execute(
        setup.admin, UploadedFile(path=path, file_name="a.csv", delimiter=";")
    )

    assert not again.duplicate
    assert (again.run.id, again.run.status, again.run.delimiter) == (
        first.run.id,
        ImportStatus.QUEUED,
        ";",
    )
    assert len(setup.jobs.jobs) == 1
    await setup.run_jobs()
    done = await setup.runs.get(setup.agency.id, first.run.id)
    assert done is not None
    assert (done.status, done.rows_created, done.failure_reason) == (
        ImportStatus.SUCCEEDED,
        2,
        None,
    )
    actions = [e.action for e in setup.store.audit_log.values() if e.entity_id == done.id]
    assert actions.count("import_run.reopened") == 1
    assert actions.count("import_run.queued") == 1


async def test_a_failed_upload_sent_again_the_same_way_stays_failed(setup, tmp_path):
    path = saved(tmp_path, SEMICOLONS)
    first = await setup.queue.execute(setup.admin, UploadedFile(path=path, file_name="a.csv"))
    await setup.run_jobs()

    again = await setup.queue.execute(setup.admin, UploadedFile(path=path, file_name="b.csv"))

    assert again.duplicate
    assert (again.run.id, again.run.status) == (first.run.id, ImportStatus.FAILED)
    assert setup.jobs.jobs == []


async def test_a_failed_run_that_wrote_rows_is_not_reopened(setup, tmp_path):
    path = saved(tmp_path, SEMICOLONS)
    first = await setup.queue.execute(setup.admin, UploadedFile(path=path, file_name="a.csv"))
    started = await setup.runs.start(first.run.id, attempt=0, at=T0)
    setup.jobs.jobs.clear()
    await setup.writer.write(  # a batch written before the file was found wanting
        PlacementBatch(
            run_id=started.id,
            attempt=started.attempt,
            agency_id=setup.agency.id,
            rows=[placement_row(2, "A-1")],
            errors=[],
            rows_read=1,
            lines_done=2,
            at=T0,
        )
    )
    await setup.runs.finish(
        started.id,
        attempt=started.attempt,
        status=ImportStatus.FAILED,
        at=T0,
        failure_reason="line 3: unbalanced quotes",
    )

    again = await setup.queue.execute(
        setup.admin, UploadedFile(path=path, file_name="a.csv", delimiter=";")
    )

    assert again.duplicate and again.run.status is ImportStatus.FAILED
    assert setup.jobs.jobs == []


async def test_a_failed_command_line_import_is_reopened_by_an_upload_with_its_backup(
    setup, tmp_path
):
    path = saved(tmp_path, SEMICOLONS)
    failed = await setup.import_file.execute(setup.admin, ImportFile(path=path, file_name="a.csv"))
    assert (failed.status, failed.storage_key) == (ImportStatus.FAILED, None)

    again = await setup.queue.execute(
        setup.admin, UploadedFile(path=path, file_name="a.csv", delimiter=";")
    )

    assert (again.duplicate, again.run.id, again.run.status) == (
        False,
        failed.id,
        ImportStatus.QUEUED,
    )
    assert setup.storage.objects[again.run.storage_key] == path.read_bytes()
    await setup.run_jobs()
    done = await setup.runs.get(setup.agency.id, failed.id)
    assert done is not None
    assert (done.status, done.rows_created) == (ImportStatus.SUCCEEDED, 2)


async def test_a_run_reopened_by_an_upload_is_read_its_way_by_whoever_takes_it(setup, tmp_path):
    path = saved(tmp_path, SEMICOLONS)
    await setup.queue.execute(setup.admin, UploadedFile(path=path, file_name="a.csv"))
    await setup.run_jobs()
    reopened = await setup.queue.execute(
        setup.admin, UploadedFile(path=path, file_name="a.csv", delimiter=";")
    )

    # A poll of a source that still reads "," (or the command line) reaches the run first.
    taken = await setup.import_file.execute(setup.admin, ImportFile(path=path, file_name="a.csv"))

    assert (taken.id, taken.status, taken.rows_created) == (
        reopened.run.id,
        ImportStatus.SUCCEEDED,
        2,
    )
    assert taken.delimiter == ";"


class RacedRuns:
    """``runs``, whose reopen loses to another caller's, committed just before."""

    def __init__(self, runs: ImportRunRepository, store: InMemoryStore) -> None:
        self._runs = runs
        self._store = store

    def __getattr__(self, method: str) -> Any:
        return getattr(self._runs, method)

    async def reopen(self, run_id, *, attempt, anew):
        async with InMemoryUnitOfWork(self._store) as winner:
            await winner.import_runs.reopen(run_id, attempt=attempt, anew=anew)
            await winner.commit()
        return await self._runs.reopen(run_id, attempt=attempt, anew=anew)


class RacedUnitOfWork(InMemoryUnitOfWork):
    """An in-memory unit of work whose reopen of a run loses to another caller's."""

    def __init__(self, store: InMemoryStore) -> None:
        super().__init__(store)
        self._racing = store

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.import_runs = RacedRuns(self.import_runs, self._racing)
        return self


async def test_an_upload_that_loses_a_reopen_answers_with_the_run_as_the_winner_left_it(
    setup, tmp_path
):
    path = saved(tmp_path, SEMICOLONS)
    first = await setup.queue.execute(setup.admin, UploadedFile(path=path, file_name="a.csv"))
    await setup.run_jobs()
    setup.queue = setup.uploader(RacedUnitOfWork(setup.store))

    again = await setup.queue.execute(
        setup.admin, UploadedFile(path=path, file_name="a.csv", delimiter=";")
    )

    assert again.duplicate
    assert (again.run.id, again.run.status, again.run.delimiter) == (
        first.run.id,
        ImportStatus.QUEUED,
        ";",
    )
    audited = [e.action for e in setup.store.audit_log.values() if e.entity_id == first.run.id]
    assert "import_run.reopened" not in audited  # the winner audits its reopening


# Every change of a run is written with its audit entry, in one transaction: when the audit
# log refuses the entry, the change is not kept either.


async def test_a_run_is_not_started_unless_its_start_is_audited(setup, tmp_path):
    command = ImportFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")

    with pytest.raises(AuditLogDown):
        await setup.importer(AuditRefusingUnitOfWork(setup.store, "import_run.started")).execute(
            setup.admin, command
        )

    [run] = await setup.runs.list(setup.agency.id, after=None, limit=2)
    assert (run.status, run.attempt, run.started_at) == (ImportStatus.QUEUED, 0, None)
    assert setup.audited(run.id) == ["import_run.queued"]
    done = await setup.import_file.execute(setup.admin, command)  # the audit log is back
    assert (done.id, done.status, done.attempt) == (run.id, ImportStatus.SUCCEEDED, 1)
    assert setup.audited(run.id) == [
        "import_run.queued",
        "import_run.started",
        "import_run.finished",
    ]


async def test_a_run_is_not_finished_unless_its_end_is_audited(setup, tmp_path):
    command = ImportFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")

    with pytest.raises(AuditLogDown):
        await setup.importer(AuditRefusingUnitOfWork(setup.store, "import_run.finished")).execute(
            setup.admin, command
        )

    [run] = await setup.runs.list(setup.agency.id, after=None, limit=2)
    assert (run.status, run.finished_at, run.rows_created) == (ImportStatus.RUNNING, None, 2)
    assert setup.audited(run.id) == ["import_run.queued", "import_run.started"]
    done = await setup.import_file.execute(setup.admin, command)  # resumes after its rows
    assert (done.id, done.status, done.attempt, done.rows_created) == (
        run.id,
        ImportStatus.SUCCEEDED,
        2,
        2,
    )
    assert setup.audited(run.id) == [
        "import_run.queued",
        "import_run.started",
        "import_run.started",
        "import_run.finished",
    ]


async def test_a_failed_run_is_not_reopened_unless_its_reopening_is_audited(setup, tmp_path):
    path = saved(tmp_path, SEMICOLONS)
    first = await setup.queue.execute(setup.admin, UploadedFile(path=path, file_name="a.csv"))
    await setup.run_jobs()
    failed = await setup.runs.get(setup.agency.id, first.run.id)
    assert failed is not None and failed.status is ImportStatus.FAILED

    with pytest.raises(AuditLogDown):
        await setup.uploader(AuditRefusingUnitOfWork(setup.store, "import_run.reopened")).execute(
            setup.admin, UploadedFile(path=path, file_name="a.csv", delimiter=";")
        )

    assert await setup.runs.get(setup.agency.id, first.run.id) == failed
    assert setup.jobs.jobs == []
    assert "import_run.reopened" not in setup.audited(first.run.id)


async def test_an_upload_whose_run_cannot_be_audited_records_nothing(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")

    with pytest.raises(AuditLogDown):
        await setup.uploader(AuditRefusingUnitOfWork(setup.store, "import_run.queued")).execute(
            setup.admin, upload
        )

    assert await setup.runs.list(setup.agency.id, after=None, limit=2) == []
    assert (setup.storage.objects, setup.jobs.jobs) == ({}, [])


async def test_an_upload_is_audited_as_queued_with_its_run_though_storage_is_down(setup, tmp_path):
    upload = UploadedFile(path=saved(tmp_path, placement_text(2)), file_name="a.csv")
    setup.storage.down = True

    with pytest.raises(StorageUnavailable):
        await setup.queue.execute(setup.admin, upload)
    setup.storage.down = False
    again = await setup.queue.execute(setup.admin, upload)

    assert again.duplicate and again.run.status is ImportStatus.QUEUED
    assert setup.audited(again.run.id) == ["import_run.queued"]
    assert len(setup.jobs.jobs) == 1
