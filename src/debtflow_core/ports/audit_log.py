from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.audit import AuditEntry


class AuditPosition(msgspec.Struct, frozen=True):
    occurred_at: datetime
    id: UUID


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Audit entries of one agency, newest first; ``since`` inclusive, ``until`` exclusive."""

    agency_id: UUID
    entity_type: str | None = None
    entity_id: UUID | None = None
    actor_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: AuditPosition | None = None
    limit: int = 50


class AuditLogRepository(Protocol):
    """The append-only audit log: entries are added, never changed."""

    async def add(self, entry: AuditEntry) -> None: ...

    async def query(self, query: AuditQuery) -> list[AuditEntry]: ...
