"""Polling a file source: download, back up before parsing, import, archive."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import timedelta

import msgspec
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
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_core.actor import Actor
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.imports import FileSource, FileSourceKind, ImportStatus
from debtflow_core.errors import NotFound, SourceUnavailable, StorageUnavailable
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_core.ports.placement_writer import BatchOutcome, PlacementBatch, PlacementWriter
from debtflow_core.use_cases.imports import (
    SOURCE_QUIET_PERIOD,
    FetchPlacementFiles,
    ImportFile,
    ImportPlacementFile,
)
from tests.support.file_fakes import FakeFileSource, FakeObjectStorage
from tests.support.imports import T0, placement_text

GOOD = placement_text(3).encode()
LATIN1 = "account_id,first_name\nA-1,Zo\xeb\n".encode("latin-1")


class LoggingWriter(PlacementWriter):
    def __init__(self, writer: PlacementWriter, log: list[str]) -> None:
        self._writer = writer
        self._log = log

    async def write(self, batch: PlacementBatch) -> BatchOutcome:
        self._log.append(f"write {batch.rows_read} rows")
        return await self._writer.write(batch)


class Setup:
    def __init__(self, files: dict[str, bytes], storage: ObjectStorage | None = None) -> None:
        self.log: list[str] = []
        self.store, self.imports = InMemoryStore(), InMemoryImportStore()
        self.agency = Agency(id=uuid.uuid4(), slug="acme", name="Acme", created_at=T0)
        self.store.agencies[self.agency.id] = self.agency
        self.actor = Actor.system(self.agency.id)
        self.source_files = FakeFileSource(files)
        self.storage = FakeObjectStorage(self.log) if storage is None else storage
        self.source = FileSource(
            id=uuid.uuid4(),
            agency_id=self.agency.id,
            name="northwind",
            kind=FileSourceKind.SFTP,
            host="sftp.example",
            port=22,
            username="acme",
            secret_env="DEBTFLOW_SOURCE_SECRET_NORTHWIND",
            host_key="ssh-ed25519 AAAA",
            directory="/drop",
            pattern="*.csv",
            archive_directory="/drop/done",
            delimiter=",",
            column_mapping={},
            schedule="*/15 * * * *",
            active=True,
            created_at=T0,
        )
        self.clock = clock = FixedClock(T0)
        self.import_file = ImportPlacementFile(
            LoggingWriter(InMemoryPlacementWriter(self.store, self.imports), self.log),
            InMemoryUnitOfWork(self.store),
            clock,
            InMemoryTelemetry(),
        )
        self.fetch = FetchPlacementFiles(
            self.source_files, self.storage, InMemoryUnitOfWork(self.store), self.import_file, clock
        )


async def test_each_file_is_backed_up_before_it_is_parsed_then_archived():
    setup = Setup({"a.csv": GOOD})

    (run,) = await setup.fetch.execute(setup.actor, setup.source)

    sha = hashlib.sha256(GOOD).hexdigest()
    key = f"{setup.agency.id}/{setup.source.id}/2026/11/02/{sha}-a.csv"
    assert setup.log == [f"put {key}", "write 3 rows"]
    assert setup.storage.objects[key] == GOOD
    assert (run.status, run.storage_key, run.file_source_id) == (
        ImportStatus.SUCCEEDED,
        key,
        setup.source.id,
    )
    assert setup.source_files.archived == {"a.csv": GOOD}
    assert len(setup.store.accounts) == 3


async def test_the_same_content_under_two_names_imports_once():
    setup = Setup({"a.csv": GOOD, "b.csv": GOOD})

    first, second = await setup.fetch.execute(setup.actor, setup.source)

    assert second == first
    assert [entry for entry in setup.log if entry.startswith("write")] == ["write 3 rows"]
    assert set(setup.source_files.archived) == {"a.csv", "b.csv"}


async def test_an_unreadable_file_fails_its_run_and_stays_on_the_source():
    setup = Setup({"bad.csv": LATIN1, "good.csv": GOOD})

    bad, good = await setup.fetch.execute(setup.actor, setup.source)

    assert bad.status == ImportStatus.FAILED
    assert bad.failure_reason.startswith("the file is not UTF-8 text")
    assert good.status == ImportStatus.SUCCEEDED
    assert set(setup.source_files.files) == {"bad.csv"}
    assert len(setup.storage.objects) == 2
    again = await setup.fetch.execute(setup.actor, setup.source)
    assert again == [bad]


async def test_a_source_that_is_down_raises_and_records_nothing():
    setup = Setup({"a.csv": GOOD})
    setup.source_files.down = True

    with pytest.raises(SourceUnavailable):
        await setup.fetch.execute(setup.actor, setup.source)

    assert setup.store.import_runs == {}


async def test_another_agencys_source_is_not_found():
    setup = Setup({})
    with pytest.raises(NotFound):
        await setup.fetch.execute(Actor.system(uuid.uuid4()), setup.source)


@pytest.mark.parametrize(
    "modified", [T0 - timedelta(seconds=10), T0 + timedelta(seconds=30)], ids=["10s-ago", "ahead"]
)
async def test_a_file_modified_within_the_quiet_period_is_left_for_a_later_poll(
    modified, caplog: pytest.LogCaptureFixture
):
    setup = Setup({"a.csv": GOOD, "b.csv": placement_text(2, start=3).encode()})
    setup.source_files.modified["b.csv"] = modified
    caplog.set_level(logging.INFO, logger="debtflow.imports")

    (first,) = await setup.fetch.execute(setup.actor, setup.source)

    assert first.file_name == "a.csv"
    assert setup.source_files.downloads == ["a.csv"]
    assert set(setup.source_files.files) == {"b.csv"}  # neither imported nor archived
    assert any("'b.csv'" in record.getMessage() for record in caplog.records)

    # Still within the quiet period, still left; once it is older, fetched.
    setup.clock.advance(modified - T0 + SOURCE_QUIET_PERIOD - timedelta(seconds=1))
    assert await setup.fetch.execute(setup.actor, setup.source) == []
    setup.clock.advance(timedelta(seconds=1))
    (second,) = await setup.fetch.execute(setup.actor, setup.source)

    assert (second.file_name, second.status) == ("b.csv", ImportStatus.SUCCEEDED)
    assert set(setup.source_files.archived) == {"a.csv", "b.csv"}
    assert len(setup.store.accounts) == 3 + 2


async def test_the_quiet_period_can_be_shortened():
    setup = Setup({"a.csv": GOOD})
    setup.source_files.modified["a.csv"] = T0 - timedelta(seconds=10)

    (run,) = await setup.fetch.execute(setup.actor, setup.source, quiet_period=timedelta(seconds=5))

    assert run.status == ImportStatus.SUCCEEDED


async def test_a_file_gone_since_the_listing_is_skipped_and_the_others_still_fetched(
    caplog: pytest.LogCaptureFixture,
):
    setup = Setup({"a.csv": GOOD, "c.csv": placement_text(2, start=3).encode()})
    setup.source_files.vanished = {"b.csv"}

    runs = await setup.fetch.execute(setup.actor, setup.source)

    assert [run.file_name for run in runs] == ["a.csv", "c.csv"]
    assert setup.source_files.downloads == ["a.csv", "b.csv", "c.csv"]
    assert set(setup.source_files.archived) == {"a.csv", "c.csv"}
    assert [record.levelname for record in caplog.records if "'b.csv'" in record.getMessage()] == [
        "WARNING"
    ]


async def test_a_file_gone_before_it_is_archived_keeps_its_run_and_the_others_go_on():
    setup = Setup({"a.csv": GOOD, "b.csv": placement_text(2, start=3).encode()})
    archive = setup.source_files.archive

    async def gone_first(source, name):
        if name == "a.csv":
            setup.source_files.files.pop(name)  # moved away by someone else meanwhile
        await archive(source, name)

    setup.source_files.archive = gone_first  # type: ignore[method-assign]

    first, second = await setup.fetch.execute(setup.actor, setup.source)

    assert (first.file_name, first.status) == ("a.csv", ImportStatus.SUCCEEDED)
    assert (second.file_name, second.status) == ("b.csv", ImportStatus.SUCCEEDED)
    assert set(setup.source_files.archived) == {"b.csv"}


async def test_a_failed_file_imports_at_the_next_poll_once_the_source_reads_it_otherwise():
    setup = Setup({"semi.csv": placement_text(3).replace(",", ";").encode()})
    (failed,) = await setup.fetch.execute(setup.actor, setup.source)
    assert failed.status is ImportStatus.FAILED
    assert await setup.fetch.execute(setup.actor, setup.source) == [failed]  # read the same way

    source = msgspec.structs.replace(setup.source, delimiter=";")
    (run,) = await setup.fetch.execute(setup.actor, source)

    assert (run.id, run.status, run.rows_created) == (failed.id, ImportStatus.SUCCEEDED, 3)
    assert set(setup.source_files.archived) == {"semi.csv"}


async def test_a_long_file_name_is_backed_up_under_a_shortened_key_and_imported(tmp_path):
    clock = FixedClock(T0)
    links = SignedLinks(b"k" * 32, base_url="http://debtflow.test", clock=clock)
    storage = LocalObjectStorage(tmp_path / "objects", links)
    name = "台" * 80 + ".csv"  # 244 bytes: a legal file name, too long after the hash
    setup = Setup({"a.csv": placement_text(2, start=3).encode(), name: GOOD}, storage)

    before, long = await setup.fetch.execute(setup.actor, setup.source)

    assert (long.file_name, long.status) == (name, ImportStatus.SUCCEEDED)
    assert long.storage_key is not None
    segment = long.storage_key.rsplit("/", 1)[1]
    assert segment == f"{long.sha256}-{'台' * 63}"  # 254 bytes: whole characters only
    assert await storage.exists(long.storage_key)
    assert before.status == ImportStatus.SUCCEEDED


async def test_a_file_that_cannot_be_downloaded_is_skipped_and_the_next_file_imports(
    caplog: pytest.LogCaptureFixture,
):
    setup = Setup({"a.csv": GOOD, "b.csv": placement_text(2, start=3).encode()})
    setup.source_files.unreadable = {"a.csv"}  # mode 0600, another user's

    (run,) = await setup.fetch.execute(setup.actor, setup.source)

    assert (run.file_name, run.status) == ("b.csv", ImportStatus.SUCCEEDED)
    assert set(setup.source_files.files) == {"a.csv"}
    assert len(setup.storage.objects) == 1
    assert [record.levelname for record in caplog.records if "'a.csv'" in record.getMessage()] == [
        "WARNING"
    ]
    setup.source_files.unreadable.clear()
    (later,) = await setup.fetch.execute(setup.actor, setup.source)
    assert (later.file_name, later.status) == ("a.csv", ImportStatus.SUCCEEDED)


async def test_a_file_that_cannot_be_archived_does_not_stop_the_next_file():
    setup = Setup({"a.csv": GOOD, "b.csv": placement_text(2, start=3).encode()})
    setup.source_files.unarchivable = {"a.csv"}

    first, second = await setup.fetch.execute(setup.actor, setup.source)

    assert (first.file_name, first.status) == ("a.csv", ImportStatus.SUCCEEDED)
    assert (second.file_name, second.status) == ("b.csv", ImportStatus.SUCCEEDED)
    assert set(setup.source_files.archived) == {"b.csv"}
    assert set(setup.source_files.files) == {"a.csv"}
    assert len(setup.store.accounts) == 3 + 2


async def test_a_file_whose_backup_is_refused_is_skipped_while_the_storage_answers():
    class RefusesOneKey(FakeObjectStorage):
        async def put_file(self, key: str, source, *, content_type: str) -> None:
            if key.endswith("-a.csv"):
                raise StorageUnavailable("object storage could not be used")
            await super().put_file(key, source, content_type=content_type)

    files = {"a.csv": GOOD, "b.csv": placement_text(2, start=3).encode()}
    setup = Setup(files, RefusesOneKey([]))

    (run,) = await setup.fetch.execute(setup.actor, setup.source)

    assert (run.file_name, run.status) == ("b.csv", ImportStatus.SUCCEEDED)
    assert [entry for entry in setup.log if entry.startswith("write")] == ["write 2 rows"]
    assert set(setup.source_files.files) == {"a.csv"}


async def test_a_source_that_goes_down_after_the_listing_ends_the_poll():
    setup = Setup({"a.csv": GOOD, "b.csv": placement_text(2, start=3).encode()})
    download = setup.source_files.download

    async def down_now(source, name, destination):
        setup.source_files.down = True
        await download(source, name, destination)

    setup.source_files.download = down_now  # type: ignore[method-assign]

    with pytest.raises(SourceUnavailable):
        await setup.fetch.execute(setup.actor, setup.source)

    assert setup.store.import_runs == {}


async def test_storage_that_is_down_ends_the_poll_before_anything_is_parsed():
    storage = FakeObjectStorage([])
    storage.down = True
    setup = Setup({"a.csv": GOOD, "b.csv": placement_text(2, start=3).encode()}, storage)

    with pytest.raises(StorageUnavailable):
        await setup.fetch.execute(setup.actor, setup.source)

    assert setup.store.import_runs == {}
    assert setup.source_files.downloads == ["a.csv"]


async def test_a_file_left_in_the_drop_is_not_backed_up_again_at_the_next_polls():
    setup = Setup({"a.csv": GOOD})
    source = msgspec.structs.replace(setup.source, archive_directory=None)

    (first,) = await setup.fetch.execute(setup.actor, source)
    for _ in range(3):
        setup.clock.advance(timedelta(days=1))
        assert await setup.fetch.execute(setup.actor, source) == [first]

    assert first.status == ImportStatus.SUCCEEDED
    assert [entry for entry in setup.log if entry.startswith("put")] == [f"put {first.storage_key}"]
    assert list(setup.storage.objects) == [first.storage_key]
    assert set(setup.source_files.files) == {"a.csv"}


async def test_a_known_content_whose_backup_is_missing_is_backed_up_under_its_runs_key():
    setup = Setup({"semi.csv": placement_text(3).replace(",", ";").encode()})
    source = msgspec.structs.replace(setup.source, archive_directory=None)
    (failed,) = await setup.fetch.execute(setup.actor, source)
    setup.storage.objects.clear()  # lost, or never stored: an upload whose storage was down
    setup.clock.advance(timedelta(days=1))

    (run,) = await setup.fetch.execute(setup.actor, msgspec.structs.replace(source, delimiter=";"))

    assert (run.id, run.status, run.storage_key) == (
        failed.id,
        ImportStatus.SUCCEEDED,
        failed.storage_key,
    )
    assert list(setup.storage.objects) == [failed.storage_key]


async def test_content_imported_without_a_backup_is_backed_up_once(tmp_path):
    setup = Setup({"a.csv": GOOD})
    source = msgspec.structs.replace(setup.source, archive_directory=None)
    (tmp_path / "a.csv").write_bytes(GOOD)
    # As the command line imports: no backup.
    imported = await setup.import_file.execute(
        setup.actor, ImportFile(path=tmp_path / "a.csv", file_name="a.csv")
    )

    for _ in range(3):
        setup.clock.advance(timedelta(days=1))
        assert await setup.fetch.execute(setup.actor, source) == [imported]

    day = imported.created_at.strftime("%Y/%m/%d")
    key = f"{setup.agency.id}/{setup.source.id}/{day}/{imported.sha256}-a.csv"
    assert list(setup.storage.objects) == [key]
