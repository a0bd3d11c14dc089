from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One state change: who did what to which entity, with the fields before and after.

    ``actor_id`` is ``None`` for the platform itself (operator commands, scheduled tasks).
    ``before`` and ``after`` hold only the fields that changed, as JSON-ready values.
    """

    id: UUID
    agency_id: UUID
    actor_id: UUID | None
    action: str
    entity_type: str
    entity_id: UUID
    before: dict[str, Any]
    after: dict[str, Any]
    occurred_at: datetime
