from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec


class IdempotencyState(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    DONE = "done"


class IdempotencyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What one agency's idempotency key answered: the request's fingerprint and, once the
    request has finished, its outcome and response, replayed for any repeat."""

    agency_id: UUID
    key: str
    fingerprint: str
    state: IdempotencyState
    outcome: str | None
    response: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime


class IdempotencyRepository(Protocol):
    """The durable truth about idempotency keys, inside the unit of work's transaction.

    ``claim`` inserts the record unless the (agency, key) pair exists; of two concurrent
    claims exactly one gets ``None`` (it won), the other the existing record (once the
    winner's transaction commits).
    """

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None: ...

    async def finish(
        self, agency_id: UUID, key: str, outcome: str, response: dict[str, Any]
    ) -> IdempotencyRecord | None:
        """Store the finished request's outcome and response; return the record, or
        ``None`` if it is gone (purged after it expired)."""
        ...

    async def release(self, agency_id: UUID, key: str) -> None:
        """Forget a claim whose request did nothing, so the key may be used again."""
        ...

    async def purge_expired(self, now: datetime) -> int:
        """Delete records past ``expires_at``; return how many."""
        ...


class IdempotencyCache(Protocol):
    """A fast, shared copy of finished idempotency records (Redis), in front of the
    database. It is only a cache: losing it, or it being down, changes no outcome. The
    use cases put and trust only answers that can no longer change, since a put can be
    lost, land after a later one, or go to another process's cache.
    ``get`` returns ``None`` for a miss and for any failure; ``put`` never raises."""

    async def get(self, agency_id: UUID, key: str) -> IdempotencyRecord | None: ...

    async def put(self, record: IdempotencyRecord) -> None: ...
