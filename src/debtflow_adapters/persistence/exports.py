"""Exports in SQLAlchemy Core, on the unit of work's connection."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from debtflow_adapters.persistence.statements import (
    dialect_insert,
    first,
    insert_if_new,
    keyset_page,
)
from debtflow_adapters.persistence.tables import exports, nightly_exports
from debtflow_core.domain.export import (
    FINISHED_EXPORTS,
    Export,
    ExportKind,
    ExportParameters,
    ExportStatus,
)
from debtflow_core.errors import NotFound
from debtflow_core.ports.exports import ExportPosition, ExportRepository

_COLUMNS = tuple(exports.c[name] for name in Export.__struct_fields__)
_UNFINISHED = [status.value for status in ExportStatus if status not in FINISHED_EXPORTS]


def _export(row: Row[Any]) -> Export:
    values = dict(zip(Export.__struct_fields__, row, strict=True))
    values["kind"] = ExportKind(values["kind"])
    values["status"] = ExportStatus(values["status"])
    values["parameters"] = msgspec.convert(values["parameters"], ExportParameters)
    return Export(**values)


class SqlExportRepository(ExportRepository):
    """Exports in the ``exports`` table; the agencies' nightly choices in
    ``nightly_exports``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, export: Export) -> bool:
        values = msgspec.structs.asdict(export)
        values["parameters"] = msgspec.to_builtins(export.parameters)
        return await insert_if_new(self._connection, exports, values)

    async def get(self, agency_id: UUID, export_id: UUID) -> Export | None:
        statement = sa.select(*_COLUMNS).where(
            exports.c.id == export_id, exports.c.agency_id == agency_id
        )
        return await first(self._connection, statement, _export)

    async def _change(self, export_id: UUID, values: dict[str, Any]) -> Export:
        # Only an unfinished export changes: a finished one is final. The UPDATE waits for a
        # concurrent transaction that changes the row, then sees whether it finished it.
        await self._connection.execute(
            sa.update(exports)
            .where(exports.c.id == export_id, exports.c.status.in_(_UNFINISHED))
            .values(values)
        )
        statement = sa.select(*_COLUMNS).where(exports.c.id == export_id)
        export = await first(self._connection, statement, _export)
        if export is None:
            raise NotFound.of("export", export_id)
        return export

    async def start(self, export_id: UUID, *, at: datetime) -> Export:
        return await self._change(export_id, {"status": ExportStatus.RUNNING, "started_at": at})

    async def finish(
        self,
        export_id: UUID,
        *,
        status: ExportStatus,
        at: datetime,
        rows: int | None = None,
        failure_reason: str | None = None,
    ) -> Export:
        return await self._change(
            export_id,
            {
                "status": status,
                "finished_at": at,
                "rows": rows,
                "failure_reason": failure_reason,
            },
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
        query = sa.select(*_COLUMNS).where(exports.c.agency_id == agency_id)
        if status is not None:
            query = query.where(exports.c.status == status)
        if kind is not None:
            query = query.where(exports.c.kind == kind)
        statement = keyset_page(
            query,
            (exports.c.created_at, exports.c.id),
            None if after is None else (after.created_at, after.id),
            limit,
        )
        return [_export(row) for row in await self._connection.execute(statement)]

    async def created_before(self, moment: datetime, *, limit: int) -> list[Export]:
        return await self._oldest(exports.c.created_at < moment, limit)

    async def unfinished_before(self, moment: datetime, *, limit: int) -> list[Export]:
        return await self._oldest(
            sa.and_(exports.c.created_at < moment, exports.c.status.in_(_UNFINISHED)), limit
        )

    async def _oldest(self, condition: sa.ColumnElement[bool], limit: int) -> list[Export]:
        statement = (
            sa.select(*_COLUMNS)
            .where(condition)
            .order_by(exports.c.created_at, exports.c.id)
            .limit(limit)
        )
        return [_export(row) for row in await self._connection.execute(statement)]

    async def delete(self, export_id: UUID) -> bool:
        deleted = await self._connection.execute(
            sa.delete(exports)
            .where(exports.c.id == export_id)
            .execution_options(preserve_rowcount=True)
        )
        return deleted.rowcount == 1

    async def nightly_kinds(
        self, agency_id: UUID | None = None
    ) -> dict[UUID, tuple[ExportKind, ...]]:
        query = sa.select(nightly_exports.c.agency_id, nightly_exports.c.kinds)
        if agency_id is not None:
            query = query.where(nightly_exports.c.agency_id == agency_id)
        rows = await self._connection.execute(query)
        return {row.agency_id: tuple(ExportKind(k) for k in row.kinds) for row in rows}

    async def choose_nightly_kinds(self, agency_id: UUID, kinds: tuple[ExportKind, ...]) -> None:
        insert = dialect_insert(self._connection, nightly_exports).values(
            agency_id=agency_id, kinds=[str(kind) for kind in kinds]
        )
        await self._connection.execute(
            insert.on_conflict_do_update(
                index_elements=[nightly_exports.c.agency_id],
                set_={"kinds": insert.excluded.kinds},
            )
        )
