from __future__ import annotations

from typing import Protocol
from uuid import UUID

from debtflow_core.domain.agency import Agency


class AgencyRepository(Protocol):
    """Agencies. ``add`` raises Conflict for a slug that is taken."""

    async def add(self, agency: Agency) -> None: ...

    async def get(self, id_: UUID) -> Agency | None: ...

    async def get_by_slug(self, slug: str) -> Agency | None: ...

    async def ids(self) -> list[UUID]:
        """Every agency's id, for platform tasks that visit each agency (nightly exports)."""
        ...
