from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.debtor import Debtor


class DebtorPosition(msgspec.Struct, frozen=True):
    """Where a page of debtors ended, in their order: newest first."""

    created_at: datetime
    id: UUID


class DebtorQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Debtors of one agency, newest first.

    ``text`` matches, case-insensitively, anywhere in "first last" or the external id:
    both are lowered a code point at a time, as PostgreSQL's lower() does ("İ" to "i", a
    capital sigma to the small one whether it ends a word or not), so a part of a name
    matches as it is written within the name.
    ``collector_id`` keeps only debtors with an account assigned to that collector.
    """

    agency_id: UUID
    text: str | None = None
    collector_id: UUID | None = None
    after: DebtorPosition | None = None
    limit: int = 50


class DebtorRepository(Protocol):
    """Debtors. ``add`` raises Conflict for an external id already used in the agency."""

    async def add(self, debtor: Debtor) -> None: ...

    async def get(self, id_: UUID) -> Debtor | None: ...

    async def lock(self, id_: UUID) -> Debtor | None:
        """The debtor, held until the transaction ends (``SELECT … FOR UPDATE``): two
        transactions that change one debtor take turns, and the second reads what the
        first left, so an edit never writes back a contact flag another one just set."""
        ...

    async def get_by_external_id(self, agency_id: UUID, external_id: str) -> Debtor | None: ...

    async def update(self, debtor: Debtor) -> None: ...

    async def search(self, query: DebtorQuery) -> list[Debtor]: ...
