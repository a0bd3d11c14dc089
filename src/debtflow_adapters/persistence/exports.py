"""Exports on SQLAlchemy, in the ``exports`` table. Each call is its own transaction on a
pooled connection."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.persistence.statements import dialect_insert, insert_if_new, keyset_page
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

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, export: Export) -> bool:
        values = msgspec.structs.asdict(export)
        values["parameters"] = msgspec.to_builtins(export.parameters)
        async with self._engine.begin() as connection:
            return await insert_if_new(connection, exports, values)

    async def get(self, agency_id: UUID, export_id: UUID) -> Export | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(*_COLUMNS).where(
                        exports.c.id == export_id, exports.c.agency_id == agency_id
                    )
                )
            ).first()
        return None if row is None else _export(row)

    async def _change(self, export_id: UUID, values: dict[str, Any]) -> Export:
        async with self._engine.begin() as connection:
            # Only an unfinished export changes: a finished one is final.
            await connection.execute(
                sa.update(exports)
                .where(exports.c.id == export_id, exports.c.status.in_(_UNFINISHED))
                .values(values)
            )
            row = (
                await connection.execute(sa.select(*_COLUMNS).where(exports.c.id == export_id))
            ).first()
        if row is None:
            raise NotFound.of("export", export_id)
        return _export(row)

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
        async with self._engine.connect() as connection:
            return [_export(row) for row in await connection.execute(statement)]

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
        async with self._engine.connect() as connection:
            return [_export(row) for row in await connection.execute(statement)]

    async def delete(self, export_id: UUID) -> bool:
        async with self._engine.begin() as connection:
            deleted = await connection.execute(
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
        async with self._engine.connect() as connection:
            rows = await connection.execute(query)
            return {row.agency_id: tuple(ExportKind(k) for k in row.kinds) for row in rows}

    async def choose_nightly_kinds(self, agency_id: UUID, kinds: tuple[ExportKind, ...]) -> None:
        async with self._engine.begin() as connection:
            insert = dialect_insert(connection, nightly_exports).values(
                agency_id=agency_id, kinds=[str(kind) for kind in kinds]
            )
            await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[nightly_exports.c.agency_id],
                    set_={"kinds": insert.excluded.kinds},
                )
            )
