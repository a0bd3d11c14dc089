from __future__ import annotations

from uuid import UUID

from debtflow_core.ports.idempotency import IdempotencyCache, IdempotencyRecord


class InMemoryIdempotencyCache(IdempotencyCache):
    """Finished idempotency records in this process: the embedded stand-in for Redis."""

    def __init__(self) -> None:
        self._records: dict[tuple[UUID, str], IdempotencyRecord] = {}

    async def get(self, agency_id: UUID, key: str) -> IdempotencyRecord | None:
        return self._records.get((agency_id, key))

    async def put(self, record: IdempotencyRecord) -> None:
        self._records[(record.agency_id, record.key)] = record
