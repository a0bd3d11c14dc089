from __future__ import annotations

from typing import Protocol
from uuid import UUID

from debtflow_core.domain.agency import Agency


class AgencyRepository(Protocol):
    """Agencies. ``add`` raises Conflict for a slug that is taken."""

    async def add(self, agency: Agency) -> None: ...

    async def get(self, id_: UUID) -> Agency | None: ...

    async def lock(self, id_: UUID) -> Agency | None:
        """The agency, held until the transaction ends: changes that are judged on the
        agency as a whole (who its active admins are) take turns, and the second sees what
        the first left. The agency's own rows are still added meanwhile: on PostgreSQL the
        lock is ``FOR NO KEY UPDATE``, which the foreign-key checks of inserts do not wait
        for."""
        ...

    async def get_by_slug(self, slug: str) -> Agency | None: ...

    async def ids(self) -> list[UUID]:
        """Every agency's id, for platform tasks that visit each agency (nightly exports)."""
        ...
