from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.activity import Activity


class ActivityPosition(msgspec.Struct, frozen=True):
    occurred_at: datetime
    id: UUID


class ActivityQuery(msgspec.Struct, frozen=True, kw_only=True):
    """An account's activities, newest first."""

    account_id: UUID
    after: ActivityPosition | None = None
    limit: int = 50


class ActivityRepository(Protocol):
    async def add(self, activity: Activity) -> None: ...

    async def list(self, query: ActivityQuery) -> list[Activity]: ...
