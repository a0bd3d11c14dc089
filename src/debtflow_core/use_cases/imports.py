"""Placement imports: a creditor's CSV file of new accounts, into debtors and accounts."""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.imports import (
    FINISHED_STATUSES,
    FileSource,
    ImportRowError,
    ImportRun,
    ImportStatus,
)
from debtflow_core.errors import (
    Conflict,
    NotFound,
    SourceFileChanged,
    SourceUnavailable,
    StorageUnavailable,
    ValidationFailed,
)
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.placement import (
    COLUMNS,
    FileScan,
    PlacementFileRejected,
    scan_file,
)
from debtflow_core.placement_parser import ParseRequest, PlacementParser
from debtflow_core.policy import require_admin, require_import_reader
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile
from debtflow_core.ports.import_runs import RunPosition
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_core.ports.placement_writer import BatchOutcome, PlacementBatch, PlacementWriter
from debtflow_core.ports.telemetry import Telemetry
from debtflow_core.ports.unit_of_work import UnitOfWork

# Batch writes going on at once: one merging, the next on its way to the database.
_WRITES_AT_ONCE = 2
_DONE_STATUSES = frozenset({ImportStatus.SUCCEEDED, ImportStatus.PARTIALLY_FAILED})

SOURCE_QUIET_PERIOD = timedelta(seconds=60)
"""How long a file in a source must have gone unmodified before a poll fetches it: a file
modified more recently (by the listing's ``modified_at``, against our clock) may still be
uploading, and is left for a later poll."""

log = logging.getLogger("debtflow.imports")


class ImportFile(msgspec.Struct, frozen=True, kw_only=True):
    """A local placement file to import: already downloaded and backed up by the caller,
    which names its backup in ``storage_key``. ``scan`` is the file's :func:`scan_file`
    when the caller has it already (made anew when the run reads with another delimiter).
    ``may_reopen``: whether a failed run of the content is reopened when this reads the file
    otherwise (not for the worker of a queued run, which reads as the run says, and might
    otherwise undo a newer reopening)."""

    path: Path
    file_name: str
    storage_key: str | None = None
    file_source_id: uuid.UUID | None = None
    delimiter: str = ","
    column_mapping: Mapping[str, str] = msgspec.field(default_factory=dict)
    scan: FileScan | None = None
    may_reopen: bool = True


class ImportProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a running import is: rows read so far (of this attempt) and how many failed."""

    rows_read: int
    rows_failed: int


Progress = Callable[[ImportProgress], None]


class ImportPlacementFile:
    """Import one local placement file into the actor's agency (agency admins only).

    The file is scanned first (SHA-256, UTF-8, quoting) and its run recorded ``queued``
    under (agency, SHA-256): content that already imported (succeeded or partially failed)
    is not imported again, whatever its name, and the earlier run is returned; so is a run
    that failed, unless it wrote nothing and this import reads the file otherwise (another
    delimiter or column mapping): the run is then reopened and imported anew. A run still
    queued, or left ``running`` (its worker died), is taken over and resumes after its last
    committed batch, so a crash and a rerun end as one clean import; the file is read as
    the run says, whoever began it. An unreadable file or a missing required column fails
    the run with one reason; bad rows become row errors and never stop the others. Rows go
    to the writer in batches of :data:`~debtflow_core.placement_parser.BATCH_ROWS`, one
    transaction each, parsed by a child process ahead of the writes
    (:class:`PlacementParser`): memory stays flat whatever the file's size.

    The run's start and end are audited with its counts, each in the transaction of the
    change (as is a reopening); each account records the run and line that last wrote it,
    and the backed-up file holds every value it got.
    """

    def __init__(
        self,
        writer: PlacementWriter,
        uow: UnitOfWork,
        clock: Clock,
        telemetry: Telemetry,
    ) -> None:
        self._writer = writer
        self._uow = uow
        self._clock = clock
        self._telemetry = telemetry

    async def execute(
        self, actor: Actor, command: ImportFile, progress: Progress | None = None
    ) -> ImportRun:
        require_admin(actor)
        scan = await _scanned(command.path, command.delimiter, command.scan)
        now = self._clock.now()
        asked = ImportRun.queued(
            agency_id=actor.agency_id,
            file_source_id=command.file_source_id,
            file_name=command.file_name,
            sha256=scan.sha256,
            storage_key=command.storage_key,
            at=now,
            delimiter=command.delimiter,
            column_mapping=command.column_mapping,
        )
        async with self._uow as uow:
            run = await uow.import_runs.add_or_get(asked)
            if run.id == asked.id:  # a file fetched or imported from the command line
                await _audit(uow, actor, "import_run.queued", None, run, now)
            if command.may_reopen:
                run, _ = await _read_anew(uow, actor, run, asked)
            await uow.commit()
        if run.status in FINISHED_STATUSES:
            return run
        started = await self._start(actor, run)
        scan = await _scanned(command.path, started.delimiter, scan)
        if scan.problem is not None:
            return await self._finish(actor, started, failure_reason=scan.problem)
        try:
            ignored = await self._write(started, command.path, progress)
        except PlacementFileRejected as error:
            return await self._finish(actor, started, failure_reason=error.detail)
        return await self._finish(actor, started, ignored_columns=ignored)

    async def _start(self, actor: Actor, run: ImportRun) -> ImportRun:
        """``run`` started under a new attempt, audited in the same transaction."""
        now = self._clock.now()
        async with self._uow as uow:
            started = await uow.import_runs.start(run.id, attempt=run.attempt, at=now)
            await _audit(uow, actor, "import_run.started", run, started, now)
            await uow.commit()
        return started

    async def _write(
        self, run: ImportRun, path: Path, progress: Progress | None
    ) -> tuple[str, ...]:
        """Stream the file's batches to the writer; the ignored columns.

        A batch's write starts while the one before is still writing, which the writer
        allows (it merges them in the order they were handed over): its rows travel to the
        database while the one before merges. An error ends the writes still going.
        """
        writes: deque[tuple[asyncio.Task[BatchOutcome], int]] = deque()
        read = failed = 0

        async def oldest_written() -> None:
            nonlocal read, failed
            task, rows_read = writes[0]
            outcome = await task
            writes.popleft()
            read += rows_read
            failed += outcome.failed
            if progress is not None:
                progress(ImportProgress(rows_read=read, rows_failed=failed))

        try:
            # The run's own reading: one taken over was begun by another caller.
            reading = (run.delimiter, run.column_mapping)
            async with _parser(path, *reading, skip_through=run.lines_done) as chunks:
                while (chunk := await chunks.next()) is not None:
                    batch = PlacementBatch(
                        run_id=run.id,
                        attempt=run.attempt,
                        agency_id=run.agency_id,
                        rows=chunk.rows,
                        errors=chunk.errors,
                        rows_read=chunk.rows_read,
                        lines_done=chunk.lines_done,
                        at=self._clock.now(),
                    )
                    writes.append((asyncio.create_task(self._writer.write(batch)), chunk.rows_read))
                    if len(writes) == _WRITES_AT_ONCE:
                        await oldest_written()
                while writes:
                    await oldest_written()
            return chunks.ignored_columns
        finally:
            for task, _ in writes:
                task.cancel()
            await asyncio.gather(*(task for task, _ in writes), return_exceptions=True)

    async def _finish(
        self,
        actor: Actor,
        run: ImportRun,
        *,
        ignored_columns: tuple[str, ...] = (),
        failure_reason: str | None = None,
    ) -> ImportRun:
        async with self._uow as uow:
            current = await uow.import_runs.get(run.agency_id, run.id)
            if current is None:
                raise NotFound.of("import run", run.id)
            if failure_reason is not None:
                status = ImportStatus.FAILED
            elif current.rows_failed == 0:
                status = ImportStatus.SUCCEEDED
            elif current.rows_created + current.rows_updated == 0:
                status, failure_reason = ImportStatus.FAILED, "every row was refused"
            else:
                status = ImportStatus.PARTIALLY_FAILED
            now = self._clock.now()
            finished = await uow.import_runs.finish(
                run.id,
                attempt=run.attempt,
                status=status,
                at=now,
                ignored_columns=ignored_columns,
                failure_reason=failure_reason,
            )
            await _audit(uow, actor, "import_run.finished", run, finished, now)
            await uow.commit()
        self._report(finished)
        return finished

    def _report(self, run: ImportRun) -> None:
        seconds = 0.0
        if run.started_at is not None and run.finished_at is not None:
            seconds = (run.finished_at - run.started_at).total_seconds()
        self._telemetry.import_finished(
            run.status,
            created=run.rows_created,
            updated=run.rows_updated,
            failed=run.rows_failed,
            seconds=seconds,
        )


async def _audit(
    uow: UnitOfWork,
    actor: Actor,
    action: str,
    before: ImportRun | None,
    after: ImportRun,
    at: datetime,
) -> None:
    """Add the run's audit entry in ``uow``'s open transaction, beside its change."""
    await uow.audit_log.add(
        audit_entry(actor, action, entity_id=after.id, before=before, after=after, at=at)
    )


async def _read_anew(
    uow: UnitOfWork, actor: Actor, run: ImportRun, anew: ImportRun
) -> tuple[ImportRun, bool]:
    """``run`` as it is now, and whether this call reopened it as ``anew`` (audited so, in
    ``uow``'s open transaction, which the caller commits).

    A run is reopened when it failed having written nothing and ``anew`` reads the file
    otherwise (another delimiter or column mapping): so a file that failed for how it was
    read imports once told how. Read the same way it would fail the same way (a poll does
    not retry a poison file for ever), and a run that wrote rows keeps its account. When
    another caller reopens it first, the run comes back as that one left it.
    """
    if (
        run.status is not ImportStatus.FAILED
        or run.rows_created + run.rows_updated > 0
        or (run.delimiter, run.column_mapping) == (anew.delimiter, anew.column_mapping)
    ):
        return run, False
    try:
        reopened = await uow.import_runs.reopen(run.id, attempt=run.attempt, anew=anew)
    except Conflict:
        current = await uow.import_runs.get(run.agency_id, run.id)
        if current is None:
            raise NotFound.of("import run", run.id) from None
        return current, False
    await _audit(uow, actor, "import_run.reopened", run, reopened, anew.created_at)
    return reopened, True


async def _scanned(path: Path, delimiter: str, scan: FileScan | None) -> FileScan:
    """``scan`` when it followed the file's quotes with ``delimiter``, else a new scan."""
    if scan is not None and scan.delimiter == delimiter:
        return scan
    return await asyncio.to_thread(scan_file, path, delimiter=delimiter)


def _parser(
    path: Path, delimiter: str, column_mapping: Mapping[str, str], *, skip_through: int = 0
) -> PlacementParser:
    return PlacementParser(
        ParseRequest(
            path=str(path),
            delimiter=delimiter,
            column_mapping=dict(column_mapping),
            skip_through=skip_through,
        )
    )


class PlacementCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A dry run's findings: what an import of the file would read and refuse.

    ``errors`` holds the first ``max_errors`` row errors. Accounts named again in a later
    batch are not found here (only the database knows what a batch before wrote).
    """

    sha256: str
    rows_read: int
    rows_valid: int
    rows_failed: int
    ignored_columns: tuple[str, ...]
    errors: list[ImportRowError]
    failure_reason: str | None


class CheckPlacementFile:
    """Validate a placement file as an import would, writing nothing (a dry run)."""

    async def execute(
        self,
        command: ImportFile,
        progress: Progress | None = None,
        *,
        max_errors: int = 100,
    ) -> PlacementCheck:
        scan = await _scanned(command.path, command.delimiter, command.scan)
        ignored: tuple[str, ...] = ()
        errors: list[ImportRowError] = []
        read = failed = 0
        failure = scan.problem
        if failure is None:
            try:
                async with _parser(
                    command.path, command.delimiter, command.column_mapping
                ) as chunks:
                    while (chunk := await chunks.next()) is not None:
                        read += chunk.rows_read
                        failed += len(chunk.errors)
                        errors.extend(chunk.errors[: max_errors - len(errors)])
                        if progress is not None:
                            progress(ImportProgress(rows_read=read, rows_failed=failed))
                ignored = chunks.ignored_columns
            except PlacementFileRejected as error:
                failure = error.detail
        return PlacementCheck(
            sha256=scan.sha256,
            rows_read=read,
            rows_valid=read - failed,
            rows_failed=failed,
            ignored_columns=ignored,
            errors=sorted(errors, key=lambda e: e.line),
            failure_reason=failure,
        )


_KEY_SEGMENT_BYTES = 255
"""The longest segment of a backup's key: a file name's limit on local storage (and on
most file systems)."""


def _hashed_name(sha256: str, name: str) -> str:
    """``{sha256}-{name}``, the name cut to whole characters within
    :data:`_KEY_SEGMENT_BYTES` of UTF-8: the hash alone tells one content from another."""
    return f"{sha256}-{name}".encode()[:_KEY_SEGMENT_BYTES].decode(errors="ignore")


def backup_key(source: FileSource, day: str, sha256: str, name: str) -> str:
    """Where a fetched file is backed up: ``{agency}/{source}/{YYYY/MM/DD}/{sha256}-{name}``
    (a long name shortened to keep the last segment within 255 bytes)."""
    return f"{source.agency_id}/{source.id}/{day}/{_hashed_name(sha256, name)}"


class FetchPlacementFiles:
    """Poll one file source: import each file waiting there (agency admins; the scheduler
    acts as the platform inside the source's agency).

    A file modified less than ``quiet_period`` (:data:`SOURCE_QUIET_PERIOD`) before the
    listing, by our clock, is left alone: it may still be uploading, and a later poll takes
    it once it has stopped changing (a modification time ahead of our clock counts as
    recent). Each other file is downloaded to a temporary file, backed up to object storage
    under :func:`backup_key` before it is parsed, imported (content already imported is not
    imported twice), and archived on the source once its run succeeded or partially failed.
    Content that has a run already keeps that run's backup, made again only if it is
    missing: a file left in the drop (a source without an archive directory) is not stored
    anew at every poll.
    A file whose run failed stays where it is, and its run says why; once the source reads
    files otherwise (its delimiter or column mapping changed), the next poll imports it
    anew, if the run had written nothing.

    One file never stops the others: a file the source no longer has, or whose name it
    cannot serve (``NotFound`` from the reader), one that cannot be downloaded (we may not
    read it, it changed while read) or backed up, is logged and skipped, and a later poll
    tries it again; a file imported but not archived keeps its run. The ports do not say
    whether such an error is the file's or the whole source's, so after one the source is
    listed again (or the storage checked): when that fails too,
    :class:`~debtflow_core.errors.SourceUnavailable` (or ``StorageUnavailable``) ends the
    poll for the caller to retry, as when the first listing fails; a file imported before
    the error stays imported.
    """

    def __init__(
        self,
        reader: FileSourceReader,
        storage: ObjectStorage,
        uow: UnitOfWork,
        import_file: ImportPlacementFile,
        clock: Clock,
    ) -> None:
        self._reader = reader
        self._storage = storage
        self._uow = uow
        self._import_file = import_file
        self._clock = clock

    async def execute(
        self,
        actor: Actor,
        source: FileSource,
        *,
        quiet_period: timedelta = SOURCE_QUIET_PERIOD,
    ) -> list[ImportRun]:
        require_admin(actor)
        if source.agency_id != actor.agency_id:
            raise NotFound.of("file source", source.id)
        runs = []
        listed = await self._reader.list_files(source)
        listed_at = self._clock.now()
        for remote in listed:
            if listed_at - remote.modified_at < quiet_period:
                log.info(
                    "file source %s: leaving %r for a later poll: modified at %s, less than "
                    "%g s before %s (it may still be uploading)",
                    source.id,
                    remote.name,
                    remote.modified_at.isoformat(),
                    quiet_period.total_seconds(),
                    listed_at.isoformat(),
                )
                continue
            if (run := await self._fetch(actor, source, remote)) is not None:
                runs.append(run)
        return runs

    async def _fetch(
        self, actor: Actor, source: FileSource, remote: RemoteFile
    ) -> ImportRun | None:
        """Import one listed file; ``None`` when it was skipped (see the class)."""
        with tempfile.TemporaryDirectory(prefix="debtflow-import-") as directory:
            path = Path(directory) / "placement.csv"
            try:
                await self._reader.download(source, remote.name, path)
                scan = await asyncio.to_thread(scan_file, path, delimiter=source.delimiter)
                key = await self._back_up(source, remote.name, scan.sha256, path)
            except NotFound as error:
                log.warning("file source %s: skipping %r: %s", source.id, remote.name, error.detail)
                return None
            except (SourceUnavailable, SourceFileChanged, StorageUnavailable) as error:
                await self._check_usable(source, error)
                log.warning(
                    "file source %s: skipping %r until a later poll: %s",
                    source.id,
                    remote.name,
                    error.detail,
                )
                return None
            run = await self._import_file.execute(
                actor,
                ImportFile(
                    path=path,
                    file_name=remote.name,
                    storage_key=key,
                    file_source_id=source.id,
                    delimiter=source.delimiter,
                    column_mapping=source.column_mapping,
                    scan=scan,
                ),
            )
        if run.status in _DONE_STATUSES:
            try:
                await self._reader.archive(source, remote.name)
            except NotFound as error:
                # Imported, then moved or deleted by someone else: nothing left to archive.
                log.warning(
                    "file source %s: %r was imported but could not be archived: %s",
                    source.id,
                    remote.name,
                    error.detail,
                )
            except SourceUnavailable as error:
                await self._check_usable(source, error)
                log.warning(
                    "file source %s: %r was imported but could not be archived (a later "
                    "poll tries again): %s",
                    source.id,
                    remote.name,
                    error.detail,
                )
        return run

    async def _back_up(self, source: FileSource, name: str, sha256: str, path: Path) -> str:
        """The key of the file's backup: new content's is stored now; known content keeps
        its run's, stored again only when it is missing."""
        async with self._uow as uow:
            known = await uow.import_runs.get_by_content(source.agency_id, sha256)
        if known is None:
            key = backup_key(source, self._clock.now().strftime("%Y/%m/%d"), sha256, name)
        else:
            # A run imported without a backup (from the command line) gets one, under a key
            # of its own day: one copy, however many polls find the file.
            day = known.created_at.strftime("%Y/%m/%d")
            key = known.storage_key or backup_key(source, day, sha256, name)
            if await self._storage.exists(key):
                return key
        await self._storage.put_file(key, path, content_type="text/csv")
        return key

    async def _check_usable(self, source: FileSource, error: Exception) -> None:
        """Raise when the source or the storage fails as a whole, as it did for one file:
        the poll ends, to be retried. A file that changed while read says nothing of them."""
        if isinstance(error, SourceUnavailable):
            await self._reader.list_files(source)
        elif isinstance(error, StorageUnavailable):
            await self._storage.check()


IMPORT_PLACEMENT_FILE = "debtflow.import_placement_file"
"""The worker task that imports a queued run: :class:`ImportQueuedRun`."""

RESUMED_FOR = timedelta(days=1)
"""How long after its upload a run whose job was lost is queued again."""

_UNSAFE_IN_KEY = re.compile(r"[^A-Za-z0-9._-]")


def upload_key(agency_id: uuid.UUID, day: str, sha256: str, name: str) -> str:
    """Where an uploaded file is backed up: as :func:`backup_key`, with ``uploads`` in the
    source's place: ``{agency}/uploads/{YYYY/MM/DD}/{sha256}-{name}`` (``name`` reduced to
    letters, digits, ``.``, ``_`` and ``-``, and shortened as there)."""
    return f"{agency_id}/uploads/{day}/{_hashed_name(sha256, _UNSAFE_IN_KEY.sub('_', name))}"


class UploadedFile(msgspec.Struct, frozen=True, kw_only=True):
    """A placement file received from a client and saved by the caller at ``path``."""

    path: Path
    file_name: str
    delimiter: str = ","
    column_mapping: Mapping[str, str] = msgspec.field(default_factory=dict)


class QueuedUpload(msgspec.Struct, frozen=True, kw_only=True):
    run: ImportRun
    duplicate: bool
    """The content had a run already: ``run`` is that earlier run, and nothing new was
    queued."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _base_name(file_name: str) -> str:
    """The last component of a client's file name (browsers may send a whole path),
    without control characters."""
    base = _CONTROL.sub("", re.split(r"[/\\]", file_name)[-1]).strip()[:255]
    return base if base.strip(".") else "upload.csv"


def check_delimiter(delimiter: str) -> None:
    """Refuse a ``delimiter`` that placement files cannot be read or stored with: it is one
    character, not a quote or line break (the CSV reader refuses those) and not NUL
    (PostgreSQL cannot store it with the run or the source)."""
    if len(delimiter) != 1 or delimiter in '"\r\n\x00':
        raise ValidationFailed(
            "the delimiter must be one character, not a quote, line break or NUL",
            field="delimiter",
        )


def _check_options(delimiter: str, column_mapping: Mapping[str, str]) -> None:
    check_delimiter(delimiter)
    if any("\x00" in name for name in column_mapping):
        raise ValidationFailed("a header name cannot hold NUL", field="column_mapping")
    unknown = sorted(set(column_mapping.values()) - set(COLUMNS))
    if unknown:
        raise ValidationFailed(
            f"the mapping names columns the format does not have: {', '.join(unknown)}",
            field="column_mapping",
        )


class QueuePlacementUpload:
    """Upload a placement file for import by the workers (agency admins only).

    ``delimiter`` (default ``,``) and ``column_mapping`` (the file's header names to the
    format's column names) say how to read it; a delimiter that is not one character, or a
    mapping onto an unknown column, is refused (422). The file is hashed (SHA-256), its run
    recorded ``queued``, the file backed up to object storage under :func:`upload_key`, and
    the import handed to the workers: the answer does not wait for it; follow the run.

    Content that already has a run in the agency, under any file name, is not imported
    again: the answer is that earlier run, marked duplicate (unless it is still queued: its
    job was lost, so it is backed up and queued again). A run that failed having written
    nothing is the exception when the upload reads the file otherwise (another delimiter or
    column mapping): it is reopened with those options, audited, and queued again. A new
    run is audited as queued when it is recorded, in the same transaction. Storage that
    cannot be reached raises StorageUnavailable (503); the run then stays queued, and
    uploading the same file again queues it.
    """

    def __init__(
        self,
        storage: ObjectStorage,
        jobs: JobQueue,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._storage = storage
        self._jobs = jobs
        self._uow = uow
        self._clock = clock

    async def execute(self, actor: Actor, upload: UploadedFile) -> QueuedUpload:
        require_admin(actor)
        _check_options(upload.delimiter, upload.column_mapping)
        scan = await asyncio.to_thread(scan_file, upload.path, delimiter=upload.delimiter)
        now = self._clock.now()
        name = _base_name(upload.file_name)
        new = ImportRun.queued(
            agency_id=actor.agency_id,
            file_source_id=None,
            file_name=name,
            sha256=scan.sha256,
            storage_key=upload_key(actor.agency_id, now.strftime("%Y/%m/%d"), scan.sha256, name),
            at=now,
            delimiter=upload.delimiter,
            column_mapping=upload.column_mapping,
        )
        async with self._uow as uow:
            stored = await uow.import_runs.add_or_get(new)
            if stored.id == new.id:
                await _audit(uow, actor, "import_run.queued", None, stored, now)
            run, reopened = await _read_anew(uow, actor, stored, new)
            await uow.commit()
        duplicate = run.id != new.id and not reopened
        if run.status is not ImportStatus.QUEUED or run.storage_key is None:
            return QueuedUpload(run=run, duplicate=duplicate)
        await self._storage.put_file(run.storage_key, upload.path, content_type="text/csv")
        await self._jobs.enqueue(
            IMPORT_PLACEMENT_FILE, run_id=str(run.id), agency_id=str(run.agency_id)
        )
        return QueuedUpload(run=run, duplicate=duplicate)


class ImportQueuedRun:
    """Import a queued run's file (the workers' side of an upload): download its backup
    from object storage to a temporary file and import it with :class:`ImportPlacementFile`
    as the platform acting in the run's agency.

    Idempotent: a finished run is returned as it is; a run left running (its worker died)
    resumes after its last committed batch; a run another worker takes over meanwhile is
    left to it and returned as it is then. A run or backup that does not exist raises
    NotFound; storage that cannot be reached raises StorageUnavailable (retry later). Bad
    content never raises: it fails the run, which says why.
    """

    def __init__(
        self, storage: ObjectStorage, import_file: ImportPlacementFile, uow: UnitOfWork
    ) -> None:
        self._storage = storage
        self._import_file = import_file
        self._uow = uow

    async def execute(self, agency_id: uuid.UUID, run_id: uuid.UUID) -> ImportRun:
        run = await self._stored(agency_id, run_id)
        if run.status in FINISHED_STATUSES:
            return run
        if run.storage_key is None:
            raise NotFound(f"import run {run_id} has no backed-up file to import")
        with tempfile.TemporaryDirectory(prefix="debtflow-import-") as directory:
            path = Path(directory) / "placement.csv"
            await self._storage.get_file(run.storage_key, path)
            try:
                return await self._import_file.execute(
                    Actor.system(agency_id),
                    ImportFile(
                        path=path,
                        file_name=run.file_name,
                        storage_key=run.storage_key,
                        file_source_id=run.file_source_id,
                        delimiter=run.delimiter,
                        column_mapping=run.column_mapping,
                        may_reopen=False,
                    ),
                )
            except Conflict:
                # Another worker took the run over: it is left to that one (retrying would
                # take it back, and so on), and returned as it is now.
                pass
        return await self._stored(agency_id, run_id)

    async def _stored(self, agency_id: uuid.UUID, run_id: uuid.UUID) -> ImportRun:
        async with self._uow as uow:
            run = await uow.import_runs.get(agency_id, run_id)
        if run is None:
            raise NotFound.of("import run", run_id)
        return run


class ResumeStalledImports:
    """Queue again the uploaded runs whose job was lost: queued or running, with no
    progress (see :attr:`ImportRun.progressed_at`) for ``older_than`` (a worker killed
    mid-import, a job dropped after its last retry). A run that is importing commits a
    batch now and then, so it is left to its worker. Queuing a run again counts as its
    progress, so a run still waiting in a backed-up queue is queued again once per
    ``older_than``, not at every sweep (one the queue refused, too, waits that long).
    :class:`ImportQueuedRun` resumes each after its last committed batch; were its first
    worker still alive, the run's attempt fences it off at its next batch. Runs made more
    than :data:`RESUMED_FOR` ago are left as they are, so a run that can never import is
    not queued again forever: an operator looks at it. A scheduled platform task; returns
    how many runs it queued.

    Runs from a file source need none of this: their source's next poll finds the file
    still there (it is archived only after its import) and resumes the run.
    """

    def __init__(self, jobs: JobQueue, uow: UnitOfWork, clock: Clock) -> None:
        self._jobs = jobs
        self._uow = uow
        self._clock = clock

    async def execute(self, older_than: timedelta = timedelta(minutes=30), batch: int = 100) -> int:
        now = self._clock.now()
        async with self._uow as uow:
            stalled = await uow.import_runs.claim_stalled(
                now - older_than, now - RESUMED_FOR, batch, at=now
            )
            await uow.commit()
        for run in stalled:
            await self._jobs.enqueue(
                IMPORT_PLACEMENT_FILE, run_id=str(run.id), agency_id=str(run.agency_id)
            )
        return len(stalled)


class GetImportRun:
    """One import run of the actor's agency; NotFound outside it. Agency admins and
    read-only users only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor, run_id: uuid.UUID) -> ImportRun:
        async with self._uow as uow:
            run = await uow.import_runs.get(actor.agency_id, run_id)
        if run is None:
            raise NotFound.of("import run", run_id)
        require_import_reader(actor)
        return run


class ListImportRuns:
    """The agency's import runs, newest first, a page at a time; only those in ``status``,
    or of one file source, when asked. Agency admins and read-only users only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self,
        actor: Actor,
        *,
        status: ImportStatus | None = None,
        file_source_id: uuid.UUID | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[ImportRun]:
        require_import_reader(actor)
        validate_limit(limit)
        after = decode_cursor(cursor, RunPosition) if cursor else None
        async with self._uow as uow:
            runs = await uow.import_runs.list(
                actor.agency_id,
                after=after,
                limit=limit + 1,
                status=status,
                file_source_id=file_source_id,
            )
        return paginate(runs, limit, lambda run: RunPosition(run.created_at, run.id))


class _ErrorPosition(msgspec.Struct, frozen=True):
    line: int


class ListImportErrors:
    """A run's row errors by line number, a page at a time. Agency admins and read-only
    users only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self, actor: Actor, run_id: uuid.UUID, *, cursor: str | None = None, limit: int = 50
    ) -> Page[ImportRowError]:
        validate_limit(limit)
        async with self._uow as uow:
            if await uow.import_runs.get(actor.agency_id, run_id) is None:
                raise NotFound.of("import run", run_id)
            require_import_reader(actor)
            after = decode_cursor(cursor, _ErrorPosition).line if cursor else None
            rows = await uow.import_runs.errors(run_id, after_line=after, limit=limit + 1)
        return paginate(rows, limit, lambda error: _ErrorPosition(error.line))
