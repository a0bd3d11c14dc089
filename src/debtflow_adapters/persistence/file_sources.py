"""File sources in SQLAlchemy Core, on the unit of work's connection."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from debtflow_adapters.persistence.statements import first, insert, integrity_error_as_conflict
from debtflow_adapters.persistence.tables import file_sources
from debtflow_core.domain.imports import FileSource, FileSourceKind
from debtflow_core.errors import Conflict
from debtflow_core.ports.file_source_repository import FileSourceRepository

_UPDATED = tuple(
    name for name in FileSource.__struct_fields__ if name not in ("id", "agency_id", "created_at")
)


def _file_source(row: Row[Any]) -> FileSource:
    values = row._asdict()
    return FileSource(
        **{
            **values,
            "kind": FileSourceKind(values["kind"]),
            "column_mapping": dict(values["column_mapping"]),
        }
    )


class SqlFileSourceRepository(FileSourceRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def _refuse_taken_name(self, source: FileSource) -> None:
        # Checked first, so that a taken name never aborts a PostgreSQL transaction.
        statement = sa.select(file_sources.c.id).where(
            file_sources.c.agency_id == source.agency_id,
            file_sources.c.name == source.name,
            file_sources.c.id != source.id,
        )
        if (await self._connection.execute(statement)).first() is not None:
            raise Conflict(f"a file source named {source.name!r} exists")

    async def add(self, source: FileSource) -> None:
        await self._refuse_taken_name(source)
        await insert(
            self._connection,
            file_sources,
            msgspec.structs.asdict(source),
            duplicate=f"a file source with the id {source.id} exists",
            dangling=f"the agency {source.agency_id} does not exist",
        )

    async def get(self, id_: UUID) -> FileSource | None:
        statement = sa.select(file_sources).where(file_sources.c.id == id_)
        return await first(self._connection, statement, _file_source)

    async def list(self, agency_id: UUID) -> list[FileSource]:
        statement = sa.select(file_sources).where(file_sources.c.agency_id == agency_id)
        result = await self._connection.execute(statement)
        # Sorted here, not by the database: collations differ between databases.
        return sorted(map(_file_source, result), key=lambda source: source.name)

    async def list_active(self) -> list[FileSource]:
        statement = sa.select(file_sources).where(file_sources.c.active.is_(True))
        result = await self._connection.execute(statement)
        return sorted(map(_file_source, result), key=lambda source: source.id)

    async def update(self, source: FileSource) -> None:
        await self._refuse_taken_name(source)
        with integrity_error_as_conflict(f"a file source named {source.name!r} exists"):
            await self._connection.execute(
                sa.update(file_sources)
                .where(file_sources.c.id == source.id)
                .values({name: getattr(source, name) for name in _UPDATED})
            )
