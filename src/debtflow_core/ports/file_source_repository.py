from __future__ import annotations

from typing import Protocol
from uuid import UUID

from debtflow_core.domain.imports import FileSource


class FileSourceRepository(Protocol):
    """The agencies' file sources. Names are unique within an agency: ``add`` and
    ``update`` raise :class:`~debtflow_core.errors.Conflict` for a name the agency already
    gave another source. Part of the unit of work's transaction."""

    async def add(self, source: FileSource) -> None: ...

    async def get(self, id_: UUID) -> FileSource | None: ...

    async def list(self, agency_id: UUID) -> list[FileSource]:
        """The agency's sources, active or not, ordered by name."""
        ...

    async def list_active(self) -> list[FileSource]:
        """Every agency's active sources (what the scheduler polls), ordered by id."""
        ...

    async def update(self, source: FileSource) -> None:
        """Save every field but ``id``, ``agency_id`` and ``created_at``."""
        ...
