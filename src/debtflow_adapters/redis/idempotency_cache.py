from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

import msgspec
import redis.asyncio as redis

from debtflow_core.ports.idempotency import IdempotencyCache, IdempotencyRecord

log = logging.getLogger("debtflow.redis")


class RedisIdempotencyCache(IdempotencyCache):
    """Finished idempotency records in Redis, kept until they expire (24 hours).

    A cache only: the database row decides. When Redis fails, ``get`` misses and ``put``
    does nothing, with a warning, so requests carry on against the database. A value
    ``get`` cannot decode (written by another release, or cut short) is a miss too.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "debtflow:idem:") -> None:
        self._client = client
        self._prefix = prefix

    def _name(self, agency_id: UUID, key: str) -> str:
        return f"{self._prefix}{agency_id}:{key}"

    async def get(self, agency_id: UUID, key: str) -> IdempotencyRecord | None:
        try:
            raw = await self._client.get(self._name(agency_id, key))
        except redis.RedisError as error:
            log.warning("idempotency cache unavailable", extra={"error": type(error).__name__})
            return None
        if raw is None:
            return None
        try:
            return msgspec.json.decode(raw, type=IdempotencyRecord)
        except msgspec.DecodeError as error:  # ValidationError too
            # Left in place: a release that can read it may share this Redis, and the
            # next put of the key writes over it.
            log.warning("idempotency cache entry unreadable", extra={"error": type(error).__name__})
            return None

    async def put(self, record: IdempotencyRecord) -> None:
        ttl = int((record.expires_at - datetime.now(UTC)).total_seconds())
        if ttl <= 0:
            return
        try:
            await self._client.set(
                self._name(record.agency_id, record.key), msgspec.json.encode(record), ex=ttl
            )
        except redis.RedisError as error:
            log.warning("idempotency cache unavailable", extra={"error": type(error).__name__})
