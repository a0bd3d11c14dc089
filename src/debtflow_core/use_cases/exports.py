"""Exports: a report computed by the workers and written as a CSV file to object storage,
offered for download through a time-limited link; nightly exports; their purge."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.export import (
    FINISHED_EXPORTS,
    Export,
    ExportKind,
    ExportParameters,
    ExportStatus,
    NightlyExports,
)
from debtflow_core.errors import NotFound, ValidationFailed
from debtflow_core.export_csv import (
    AGING_COLUMNS,
    COLLECTIONS_COLUMNS,
    IMPORTS_COLUMNS,
    PERFORMANCE_COLUMNS,
    RECOVERY_COLUMNS,
    Row,
    aging_rows,
    collections_rows,
    imports_rows,
    performance_rows,
    recovery_rows,
    write_csv,
)
from debtflow_core.ids import new_id
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import in_agency, require_admin, require_export_user
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.exports import ExportPosition, ExportRepository
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.reports import (
    AgeBalances,
    MeasureCollectorPerformance,
    MeasureRecovery,
    ReportPeriod,
    SummarizeCollections,
    SummarizeImports,
    require_report_date,
)

RUN_EXPORT = "debtflow.run_export"
"""The worker task that computes and writes a queued export: :class:`RunExport`."""

_NIGHTLY = uuid.UUID("0f3c6f0e-5d7a-4f8e-9b1c-2a4d6e8f0a1c")
"""The namespace of nightly exports' ids: one id per agency, kind and night."""

_PURGE_BATCH = 500

Table: TypeAlias = tuple[tuple[str, ...], Iterable[Row]]


class ExportPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long exports are kept and their links live, and what is exported each night
    for every agency. The defaults are the product's."""

    retention: timedelta = timedelta(days=30)
    link_lifetime: timedelta = timedelta(minutes=15)
    nightly_kinds: tuple[ExportKind, ...] = ()


class NewExport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The report to export (``kind``) and what it is computed over (``parameters``)."""

    kind: ExportKind
    parameters: ExportParameters = ExportParameters()


class ExportWithLink(Export, frozen=True, kw_only=True):
    """An export, with a link that downloads its file while ``download_expires_at`` has
    not passed (both ``null`` until the export has succeeded)."""

    download_url: str | None = None
    download_expires_at: datetime | None = None


def _period(parameters: ExportParameters) -> ReportPeriod:
    if parameters.as_of is not None:
        raise ValidationFailed("only an aging export takes as_of", field="parameters.as_of")
    if parameters.from_ is None:
        raise ValidationFailed("is required (YYYY-MM-DD)", field="parameters.from")
    if parameters.to is None:
        raise ValidationFailed("is required (YYYY-MM-DD)", field="parameters.to")
    period = ReportPeriod(from_=parameters.from_, to=parameters.to)
    try:
        period.validated()
    except ValidationFailed as error:
        raise ValidationFailed(error.detail, field=f"parameters.{error.field}") from None
    return period


def checked_parameters(
    kind: ExportKind, parameters: ExportParameters, today: date
) -> ExportParameters:
    """``parameters`` as ``kind`` takes them, an aging export's ``as_of`` defaulted to
    ``today``; ValidationFailed naming the parameter otherwise."""
    if kind is not ExportKind.AGING:
        _period(parameters)
        return parameters
    if parameters.from_ is not None or parameters.to is not None:
        raise ValidationFailed("an aging export takes as_of, not a period", field="parameters.from")
    as_of = today if parameters.as_of is None else parameters.as_of
    return ExportParameters(as_of=require_report_date(as_of, field="parameters.as_of"))


def file_name(kind: ExportKind, parameters: ExportParameters) -> str:
    """``aging-2026-02-15.csv``, ``collections-2026-01-01-2026-01-31.csv``."""
    stem = kind.replace("_", "-")
    if parameters.as_of is not None:
        return f"{stem}-{parameters.as_of}.csv"
    return f"{stem}-{parameters.from_}-{parameters.to}.csv"


def storage_key(agency_id: uuid.UUID, created_at: datetime, export_id: uuid.UUID) -> str:
    """Where an export's file goes: ``{agency}/exports/{YYYY/MM/DD}/{export id}.csv``."""
    return f"{agency_id}/exports/{created_at:%Y/%m/%d}/{export_id}.csv"


def _new_export(
    id_: uuid.UUID,
    agency_id: uuid.UUID,
    kind: ExportKind,
    parameters: ExportParameters,
    requested_by: uuid.UUID | None,
    now: datetime,
) -> Export:
    return Export(
        id=id_,
        agency_id=agency_id,
        kind=kind,
        parameters=parameters,
        status=ExportStatus.QUEUED,
        file_name=file_name(kind, parameters),
        storage_key=storage_key(agency_id, now, id_),
        requested_by=requested_by,
        created_at=now,
    )


async def _stored(uow: UnitOfWork, agency_id: uuid.UUID, export_id: uuid.UUID) -> Export:
    """The agency's export ``export_id``; NotFound if there is none."""
    export = await uow.exports.get(agency_id, export_id)
    if export is None:
        raise NotFound.of("export", export_id)
    return export


async def _audit(
    uow: UnitOfWork,
    entry_actor: Actor,
    action: str,
    before: Export | None,
    after: Export,
    at: datetime,
) -> None:
    """Add the export's audit entry in ``uow``'s open transaction, beside its change."""
    await uow.audit_log.add(
        audit_entry(entry_actor, action, entity_id=after.id, before=before, after=after, at=at)
    )


class RequestExport:
    """Export a report as a CSV file (agency admins and read-only users).

    ``kind`` names the report; ``parameters`` are the report's: ``from`` and ``to`` (whole
    UTC days, both included, at most a year) for every kind but ``aging``, which takes
    ``as_of`` (today, UTC, when omitted). A missing or bad parameter is refused (422,
    naming it). The export is recorded ``queued``, audited, and handed to the workers: the
    answer does not wait for it; follow the export until it has ``succeeded`` (then it
    offers a download link) or ``failed`` (then it says why).
    """

    def __init__(self, jobs: JobQueue, uow: UnitOfWork, clock: Clock) -> None:
        self._jobs = jobs
        self._uow = uow
        self._clock = clock

    async def execute(self, actor: Actor, command: NewExport) -> Export:
        require_export_user(actor)
        now = self._clock.now()
        parameters = checked_parameters(command.kind, command.parameters, now.date())
        export = _new_export(
            new_id(), actor.agency_id, command.kind, parameters, actor.user_id, now
        )
        async with self._uow as uow:
            await uow.exports.add(export)
            await _audit(uow, actor, "export.requested", None, export, now)
            await uow.commit()
        await self._jobs.enqueue(
            RUN_EXPORT, export_id=str(export.id), agency_id=str(export.agency_id)
        )
        return export


class RunExport:
    """Compute a queued export's report and write its CSV file (the workers' side).

    The report is the one its use case gives (as the platform acting in the export's
    agency), written to a temporary file, then stored under the export's ``storage_key``;
    the export is then ``succeeded`` with its row count, and audited. Parameters the report
    refuses fail the export, which says why. Idempotent: a finished export is returned as
    it is; one left ``running`` (its worker died) is computed and written again, over the
    same key. A missing export raises NotFound; storage that cannot be reached raises
    StorageUnavailable (the export stays ``running``; a retry writes it).

    Marking the export ``running`` is one transaction; finishing it, with its audit entry,
    another: both are kept or neither. The report and its file are made between the two.
    """

    def __init__(
        self,
        storage: ObjectStorage,
        uow: UnitOfWork,
        clock: Clock,
        collections: SummarizeCollections,
        aging: AgeBalances,
        recovery: MeasureRecovery,
        performance: MeasureCollectorPerformance,
        imports: SummarizeImports,
    ) -> None:
        self._storage = storage
        self._uow = uow
        self._clock = clock
        self._collections = collections
        self._aging = aging
        self._recovery = recovery
        self._performance = performance
        self._imports = imports

    async def execute(self, agency_id: uuid.UUID, export_id: uuid.UUID) -> Export:
        async with self._uow as uow:
            export = await _stored(uow, agency_id, export_id)
            if export.status in FINISHED_EXPORTS:
                return export
            started = await uow.exports.start(export.id, at=self._clock.now())
            await uow.commit()
        if started.status in FINISHED_EXPORTS:
            return started
        try:
            columns, rows = await self._table(Actor.system(agency_id), started)
        except ValidationFailed as error:
            reason = f"{error.field}: {error.detail}" if error.field else error.detail
            return await self._finish(started, ExportStatus.FAILED, failure_reason=reason)
        with tempfile.TemporaryDirectory(prefix="debtflow-export-") as directory:
            path = Path(directory) / "export.csv"
            count = await asyncio.to_thread(write_csv, path, columns, list(rows))
            await self._storage.put_file(started.storage_key, path, content_type="text/csv")
        return await self._finish(started, ExportStatus.SUCCEEDED, rows=count)

    async def _table(self, actor: Actor, export: Export) -> Table:
        parameters = export.parameters
        match export.kind:
            case ExportKind.AGING:
                aging = await self._aging.execute(actor, parameters.as_of)
                return AGING_COLUMNS, aging_rows(aging)
            case ExportKind.COLLECTIONS:
                summary = await self._collections.execute(actor, _period(parameters))
                return COLLECTIONS_COLUMNS, collections_rows(summary)
            case ExportKind.RECOVERY:
                recovery = await self._recovery.execute(actor, _period(parameters))
                return RECOVERY_COLUMNS, recovery_rows(recovery)
            case ExportKind.COLLECTOR_PERFORMANCE:
                performance = await self._performance.execute(actor, _period(parameters))
                return PERFORMANCE_COLUMNS, performance_rows(performance)
            case ExportKind.IMPORTS:
                imports = await self._imports.execute(actor, _period(parameters))
                return IMPORTS_COLUMNS, imports_rows(imports)

    async def _finish(
        self,
        export: Export,
        status: ExportStatus,
        *,
        rows: int | None = None,
        failure_reason: str | None = None,
    ) -> Export:
        now = self._clock.now()
        async with self._uow as uow:
            finished = await uow.exports.finish(
                export.id, status=status, at=now, rows=rows, failure_reason=failure_reason
            )
            if finished.finished_at == now:  # finished here, not by another worker meanwhile
                actor = Actor.system(export.agency_id)
                await _audit(uow, actor, "export.finished", export, finished, now)
                await uow.commit()
        return finished


class GetExport:
    """One export of the actor's agency (agency admins and read-only users); another
    agency's is not found. Once it has succeeded it offers a link that downloads its CSV
    file until ``download_expires_at`` (a fresh link at every read)."""

    def __init__(
        self, uow: UnitOfWork, storage: ObjectStorage, policy: ExportPolicy, clock: Clock
    ) -> None:
        self._uow = uow
        self._storage = storage
        self._policy = policy
        self._clock = clock

    async def execute(self, actor: Actor, export_id: uuid.UUID) -> ExportWithLink:
        async with self._uow as uow:
            found = await uow.exports.get(actor.agency_id, export_id)
        export = in_agency(actor, found, "export", export_id)
        require_export_user(actor)
        fields = msgspec.structs.asdict(export)
        if export.status is not ExportStatus.SUCCEEDED:
            return ExportWithLink(**fields)
        lifetime = self._policy.link_lifetime
        expires_at = self._clock.now() + lifetime
        url = await self._storage.download_url(
            export.storage_key, expires_in=lifetime, file_name=export.file_name
        )
        return ExportWithLink(**fields, download_url=url, download_expires_at=expires_at)


class ListExports:
    """The agency's exports, newest first, a page at a time (agency admins and read-only
    users), nightly ones (``requested_by`` null) among them; only those in ``status``, or
    of ``kind``, when asked. Download links come with each export, not in lists."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self,
        actor: Actor,
        *,
        status: ExportStatus | None = None,
        kind: ExportKind | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Export]:
        require_export_user(actor)
        validate_limit(limit)
        after = decode_cursor(cursor, ExportPosition) if cursor else None
        async with self._uow as uow:
            exports = await uow.exports.list(
                actor.agency_id, after=after, limit=limit + 1, status=status, kind=kind
            )
        return paginate(exports, limit, lambda e: ExportPosition(e.created_at, e.id))


class NightlyChoice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kinds: list[ExportKind]
    """The report kinds to export every night (none: an empty list)."""


class GetNightlyExports:
    """The report kinds exported every night for the actor's agency (agency admins and
    read-only users): its own choice, or the installation's default
    (``DEBTFLOW_NIGHTLY_EXPORTS``, marked ``inherited``) until it has chosen."""

    def __init__(self, uow: UnitOfWork, policy: ExportPolicy) -> None:
        self._uow = uow
        self._policy = policy

    async def execute(self, actor: Actor) -> NightlyExports:
        require_export_user(actor)
        async with self._uow as uow:
            return await _nightly(uow.exports, self._policy, actor.agency_id)


async def _nightly(
    exports: ExportRepository, policy: ExportPolicy, agency_id: uuid.UUID
) -> NightlyExports:
    chosen = (await exports.nightly_kinds(agency_id)).get(agency_id)
    if chosen is None:
        return NightlyExports(kinds=policy.nightly_kinds, inherited=True)
    return NightlyExports(kinds=chosen)


class ChooseNightlyExports:
    """Choose the report kinds exported every night for the agency (agency admins only),
    replacing the installation's default or an earlier choice; an empty list exports
    nothing. A kind named twice counts once. The change is audited."""

    def __init__(self, uow: UnitOfWork, clock: Clock, policy: ExportPolicy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def execute(self, actor: Actor, choice: NightlyChoice) -> NightlyExports:
        require_admin(actor)
        after = NightlyExports(kinds=tuple(dict.fromkeys(choice.kinds)))
        async with self._uow as uow:
            before = await _nightly(uow.exports, self._policy, actor.agency_id)
            await uow.exports.choose_nightly_kinds(actor.agency_id, after.kinds)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "nightly_exports.chosen",
                    entity_id=actor.agency_id,
                    before=before,
                    after=after,
                    at=self._clock.now(),
                )
            )
            await uow.commit()
        return after


class QueueNightlyExports:
    """Every night, export each agency's nightly report kinds (its choice, see
    :class:`ChooseNightlyExports`, else the default of :class:`ExportPolicy`) for the day
    before, UTC: its collections, recovery, collector performance and imports of
    that day; its aging as of that day. A scheduled platform task: the exports have no
    ``requested_by``, are audited as the platform's and listed with the others.

    Idempotent: an export's id is derived from its agency, kind and day, so running the
    task twice in a night queues each export once. Returns how many it queued.
    """

    def __init__(self, jobs: JobQueue, uow: UnitOfWork, clock: Clock, policy: ExportPolicy) -> None:
        self._jobs = jobs
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def execute(self) -> int:
        now = self._clock.now()
        day = now.date() - timedelta(days=1)
        async with self._uow as uow:
            agency_ids = await uow.agencies.ids()
            chosen = await uow.exports.nightly_kinds()
        queued = 0
        for agency_id in sorted(agency_ids):
            for kind in chosen.get(agency_id, self._policy.nightly_kinds):
                parameters = (
                    ExportParameters(as_of=day)
                    if kind is ExportKind.AGING
                    else ExportParameters(from_=day, to=day)
                )
                id_ = uuid.uuid5(_NIGHTLY, f"{agency_id}/{kind}/{day}")
                export = _new_export(id_, agency_id, kind, parameters, None, now)
                if not await self._store(export, now):
                    continue
                await self._jobs.enqueue(
                    RUN_EXPORT, export_id=str(export.id), agency_id=str(agency_id)
                )
                queued += 1
        return queued

    async def _store(self, export: Export, now: datetime) -> bool:
        """Record and audit ``export`` unless an earlier run did; whether this one did."""
        async with self._uow as uow:
            if not await uow.exports.add(export):
                return False
            actor = Actor.system(export.agency_id)
            await _audit(uow, actor, "export.requested", None, export, now)
            await uow.commit()
        return True


class PurgeExpiredExports:
    """Delete the exports older than the retention (:class:`ExportPolicy`, counted from
    their request), whatever their status: their files, then their records, each record's
    deletion audited (``export.purged``). A scheduled platform task; returns how many it
    deleted. Idempotent: a file already gone is no error, and a second run finds nothing
    left to delete."""

    def __init__(
        self,
        uow: UnitOfWork,
        storage: ObjectStorage,
        clock: Clock,
        policy: ExportPolicy,
    ) -> None:
        self._uow = uow
        self._storage = storage
        self._clock = clock
        self._policy = policy

    async def execute(self) -> int:
        cutoff = self._clock.now() - self._policy.retention
        purged = 0
        while batch := await self._batch(cutoff):
            for export in batch:
                # The file first: a record without its file may be purged again later, a
                # file without its record would never be found.
                await self._storage.delete(export.storage_key)
                async with self._uow as uow:
                    if await uow.exports.delete(export.id):
                        purged += 1
                        await uow.audit_log.add(
                            audit_entry(
                                Actor.system(export.agency_id),
                                "export.purged",
                                entity_id=export.id,
                                before=export,
                                after=None,
                                at=self._clock.now(),
                            )
                        )
                    await uow.commit()
        return purged

    async def _batch(self, cutoff: datetime) -> list[Export]:
        async with self._uow as uow:
            return await uow.exports.created_before(cutoff, limit=_PURGE_BATCH)


STALLED_AFTER = timedelta(hours=24)
"""How long after its request an export may still be queued or running: far longer than
its job's retries (minutes), and than the nightly exports' night."""


class AbandonExport:
    """Fail an export whose job gave up: its last retry failed too (storage or the database
    down for longer than the retries last), so no run will finish it. The agency sees the
    failure and its reason at once, rather than a day later from
    :class:`FailStalledExports`, and can ask again. Audited; idempotent: a finished
    export, whether a late run finished it or this did, is returned as it is."""

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, agency_id: uuid.UUID, export_id: uuid.UUID, attempts: int) -> Export:
        now = self._clock.now()
        reason = f"its job failed {attempts} times (storage or the database unreachable); ask again"
        async with self._uow as uow:
            export = await _stored(uow, agency_id, export_id)
            if export.status in FINISHED_EXPORTS:
                return export
            after = await uow.exports.finish(
                export.id, status=ExportStatus.FAILED, at=now, failure_reason=reason
            )
            if after.finished_at == now:  # failed here, not finished by a run meanwhile
                await _audit(uow, Actor.system(agency_id), "export.finished", export, after, now)
            await uow.commit()
        return after


class FailStalledExports:
    """Fail the exports still queued or running a day after they were asked for: their job
    was lost, or gave up after its last retry (storage down for hours), and no run will
    finish them. Each is failed with a reason and audited, so the agency sees it and can
    ask again. A scheduled platform task, idempotent: a failed export stays as it is, and
    one a late run finishes meanwhile is left to that run. Returns how many it failed."""

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self) -> int:
        now = self._clock.now()
        hours = STALLED_AFTER // timedelta(hours=1)
        reason = f"did not finish within {hours} hours: its job was lost; ask again"
        failed = 0
        while True:
            # One transaction per batch: each export's failure and its audit entry together.
            async with self._uow as uow:
                batch = await uow.exports.unfinished_before(now - STALLED_AFTER, limit=_PURGE_BATCH)
                if not batch:
                    return failed
                for export in batch:
                    after = await uow.exports.finish(
                        export.id, status=ExportStatus.FAILED, at=now, failure_reason=reason
                    )
                    if after.finished_at == now:  # failed here, not finished by a run meanwhile
                        actor = Actor.system(export.agency_id)
                        await _audit(uow, actor, "export.finished", export, after, now)
                        failed += 1
                await uow.commit()
