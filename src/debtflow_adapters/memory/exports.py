"""Exports in memory."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from debtflow_core.domain.export import FINISHED_EXPORTS, Export, ExportKind, ExportStatus
from debtflow_core.errors import NotFound
from debtflow_core.ports.exports import ExportPosition, ExportRepository


class InMemoryExports(ExportRepository):
    """Exports in a dict: each call applies at once, as its own transaction would."""

    def __init__(self) -> None:
        self._exports: dict[UUID, Export] = {}
        self._nightly: dict[UUID, tuple[ExportKind, ...]] = {}

    async def add(self, export: Export) -> bool:
        if export.id in self._exports:
            return False
        self._exports[export.id] = export
        return True

    async def get(self, agency_id: UUID, export_id: UUID) -> Export | None:
        export = self._exports.get(export_id)
        return export if export is not None and export.agency_id == agency_id else None

    def _change(self, export_id: UUID, **fields: object) -> Export:
        export = self._exports.get(export_id)
        if export is None:
            raise NotFound.of("export", export_id)
        if export.status in FINISHED_EXPORTS:
            return export
        changed = msgspec.structs.replace(export, **fields)
        self._exports[export_id] = changed
        return changed

    async def start(self, export_id: UUID, *, at: datetime) -> Export:
        return self._change(export_id, status=ExportStatus.RUNNING, started_at=at)

    async def finish(
        self,
        export_id: UUID,
        *,
        status: ExportStatus,
        at: datetime,
        rows: int | None = None,
        failure_reason: str | None = None,
    ) -> Export:
        return self._change(
            export_id, status=status, finished_at=at, rows=rows, failure_reason=failure_reason
        )

    async def list(
        self,
        agency_id: UUID,
        *,
        after: ExportPosition | None,
        limit: int,
        status: ExportStatus | None = None,
        kind: ExportKind | None = None,
    ) -> list[Export]:
        exports = sorted(
            (
                e
                for e in self._exports.values()
                if e.agency_id == agency_id
                and (status is None or e.status == status)
                and (kind is None or e.kind == kind)
                and (after is None or (e.created_at, e.id) < (after.created_at, after.id))
            ),
            key=lambda e: (e.created_at, e.id),
            reverse=True,
        )
        return exports[:limit]

    async def created_before(self, moment: datetime, *, limit: int) -> list[Export]:
        old = sorted(
            (e for e in self._exports.values() if e.created_at < moment),
            key=lambda e: (e.created_at, e.id),
        )
        return old[:limit]

    async def unfinished_before(self, moment: datetime, *, limit: int) -> list[Export]:
        old = await self.created_before(moment, limit=len(self._exports))
        return [e for e in old if e.status not in FINISHED_EXPORTS][:limit]

    async def delete(self, export_id: UUID) -> bool:
        return self._exports.pop(export_id, None) is not None

    async def nightly_kinds(
        self, agency_id: UUID | None = None
    ) -> dict[UUID, tuple[ExportKind, ...]]:
        return {
            agency: kinds
            for agency, kinds in self._nightly.items()
            if agency_id is None or agency == agency_id
        }

    async def choose_nightly_kinds(self, agency_id: UUID, kinds: tuple[ExportKind, ...]) -> None:
        self._nightly[agency_id] = kinds
