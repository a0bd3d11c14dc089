from __future__ import annotations

from datetime import datetime
from uuid import UUID

from debtflow_core.ports.clock import Clock
from debtflow_core.ports.idempotency import IdempotencyCache, IdempotencyRecord


class InMemoryIdempotencyCache(IdempotencyCache):
    """Finished idempotency records in this process until they expire: the embedded
    stand-in for Redis, which forgets them as its keys' TTLs run out."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._records: dict[tuple[UUID, str], IdempotencyRecord] = {}  # oldest put first

    async def get(self, agency_id: UUID, key: str) -> IdempotencyRecord | None:
        record = self._records.get((agency_id, key))
        return record if record is not None and record.expires_at > self._clock.now() else None

    async def put(self, record: IdempotencyRecord) -> None:
        now = self._clock.now()
        self._forget_expired(now)
        if record.expires_at <= now:
            return
        self._records.pop((record.agency_id, record.key), None)
        self._records[(record.agency_id, record.key)] = record

    def _forget_expired(self, now: datetime) -> None:
        """Drop the oldest records while they have expired: without this a server's every
        payment would stay in memory for as long as it runs. Records are put in about the
        order they expire (a day after their request began), so this stops at the first
        live one and a put costs little."""
        while self._records:
            oldest = next(iter(self._records))
            if self._records[oldest].expires_at > now:
                return
            del self._records[oldest]
