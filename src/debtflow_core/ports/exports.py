from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.export import Export, ExportKind, ExportStatus


class ExportPosition(msgspec.Struct, frozen=True):
    created_at: datetime
    id: UUID


class ExportRepository(Protocol):
    """Exports, and the agencies' choices of nightly exports. Part of the unit of work's
    transaction: a change is kept only when the unit of work commits, with its audit entry.

    A finished export (succeeded or failed) never changes again: ``start`` and ``finish``
    on it return it as it is, which makes running an export twice harmless.
    """

    async def add(self, export: Export) -> bool:
        """Store ``export`` unless one with its id exists; whether it was stored."""
        ...

    async def get(self, agency_id: UUID, export_id: UUID) -> Export | None: ...

    async def start(self, export_id: UUID, *, at: datetime) -> Export:
        """Mark a queued or running export ``running``, started at ``at``; a finished one
        is returned unchanged. NotFound if there is no such export."""
        ...

    async def finish(
        self,
        export_id: UUID,
        *,
        status: ExportStatus,
        at: datetime,
        rows: int | None = None,
        failure_reason: str | None = None,
    ) -> Export:
        """Close an unfinished export with its final ``status``; a finished one is returned
        unchanged. NotFound if there is no such export."""
        ...

    async def list(
        self,
        agency_id: UUID,
        *,
        after: ExportPosition | None,
        limit: int,
        status: ExportStatus | None = None,
        kind: ExportKind | None = None,
    ) -> list[Export]:
        """The agency's exports, newest first, strictly after ``after``; only those in
        ``status`` and of ``kind`` when they are given."""
        ...

    async def created_before(self, moment: datetime, *, limit: int) -> list[Export]:
        """At most ``limit`` exports of any agency created before ``moment``, oldest first."""
        ...

    async def unfinished_before(self, moment: datetime, *, limit: int) -> list[Export]:
        """At most ``limit`` exports of any agency still queued or running that were created
        before ``moment``, oldest first."""
        ...

    async def delete(self, export_id: UUID) -> bool:
        """Remove the export; whether there was one."""
        ...

    async def nightly_kinds(
        self, agency_id: UUID | None = None
    ) -> dict[UUID, tuple[ExportKind, ...]]:
        """The nightly report kinds each agency chose (only ``agency_id``'s, when given);
        an agency that never chose is absent."""
        ...

    async def choose_nightly_kinds(self, agency_id: UUID, kinds: tuple[ExportKind, ...]) -> None:
        """Record the agency's nightly report kinds, replacing its earlier choice."""
        ...
