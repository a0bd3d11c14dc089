from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.imports import ImportRowError, ImportRun, ImportStatus


class RunPosition(msgspec.Struct, frozen=True):
    created_at: datetime
    id: UUID


class ImportRunRepository(Protocol):
    """Import runs and their row errors. Part of the unit of work's transaction: a change
    is kept only when the unit of work commits, with its audit entry. The batches of a
    :class:`~debtflow_core.ports.placement_writer.PlacementWriter`, which add to a run's
    counts, row errors and progress, are transactions of their own.

    A run is unique per agency and file content (``sha256``): that is what makes importing
    the same file twice, under any name, import it once. Changing a run's state takes its
    ``attempt`` as a fencing token: a worker whose attempt is no longer the run's (another
    one took the run over) gets :class:`~debtflow_core.errors.Conflict` and changes nothing.
    """

    async def add_or_get(self, run: ImportRun) -> ImportRun:
        """Store ``run``, progressed at its creation, unless its agency has a run for the
        same ``sha256``; return the stored run (``run`` itself, or the earlier one)."""
        ...

    async def start(self, run_id: UUID, *, attempt: int, at: datetime) -> ImportRun:
        """Mark the run ``running`` under a new attempt (``attempt + 1``), started (and
        progressed) at ``at``.

        Raises Conflict if the run's attempt is not ``attempt``, NotFound if there is no run.
        The run's counts and ``lines_done`` stay: a run taken over resumes after them.
        """
        ...

    async def finish(
        self,
        run_id: UUID,
        *,
        attempt: int,
        status: ImportStatus,
        at: datetime,
        ignored_columns: tuple[str, ...] = (),
        failure_reason: str | None = None,
    ) -> ImportRun:
        """Close the run with its final ``status``, progressed at ``at``; Conflict if
        ``attempt`` is not current."""
        ...

    async def reopen(self, run_id: UUID, *, attempt: int, anew: ImportRun) -> ImportRun:
        """Put ``anew`` (queued, of the same agency and content) in the place of the failed
        run ``run_id``, as :meth:`ImportRun.reopened_as` makes it, and delete the failed
        run's row errors: the run starts over as queued, under a new attempt.

        Raises Conflict if the run has not failed or its attempt is not ``attempt`` (it
        was reopened meanwhile), NotFound if there is no run.
        """
        ...

    async def get(self, agency_id: UUID, run_id: UUID) -> ImportRun | None: ...

    async def get_by_content(self, agency_id: UUID, sha256: str) -> ImportRun | None:
        """The agency's run for the content ``sha256`` (the one :meth:`add_or_get` would
        return), if it has one."""
        ...

    async def list(
        self,
        agency_id: UUID,
        *,
        after: RunPosition | None,
        limit: int,
        status: ImportStatus | None = None,
        file_source_id: UUID | None = None,
    ) -> list[ImportRun]:
        """The agency's runs, newest first, strictly after ``after``; only those in
        ``status`` and of the file source ``file_source_id`` when they are given."""
        ...

    async def claim_stalled(
        self, before: datetime, after: datetime, limit: int, *, at: datetime
    ) -> list[ImportRun]:
        """Uploaded runs (no file source) created after ``after``, still queued or running,
        that have not progressed since before ``before``: the runs whose job was lost.
        Oldest first, across agencies, at most ``limit``.

        The runs returned are claimed: they are marked progressed at ``at``, in the same
        transaction, so that once it commits they are not returned again until ``before``
        passes ``at``. A run whose batch is being committed meanwhile is not returned.
        """
        ...

    async def errors(
        self, run_id: UUID, *, after_line: int | None, limit: int
    ) -> list[ImportRowError]:
        """The run's row errors by line, strictly after ``after_line``."""
        ...
