"""IdempotencyCache: the in-process cache and Redis keep finished records alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from debtflow_adapters.memory.idempotency_cache import InMemoryIdempotencyCache
from debtflow_adapters.redis.idempotency_cache import RedisIdempotencyCache
from debtflow_core.ports.idempotency import IdempotencyCache, IdempotencyRecord, IdempotencyState


@pytest.fixture(params=["memory", "redis"])
def cache(request) -> IdempotencyCache:
    if request.param == "memory":
        return InMemoryIdempotencyCache()
    client = request.getfixturevalue("redis_client")
    return RedisIdempotencyCache(client, prefix=f"test:{uuid.uuid4()}:")


def record(agency_id: uuid.UUID, key: str) -> IdempotencyRecord:
    now = datetime.now(UTC)
    return IdempotencyRecord(
        agency_id=agency_id,
        key=key,
        fingerprint="f" * 64,
        state=IdempotencyState.DONE,
        outcome="completed",
        response={"id": str(uuid.uuid4()), "amount": 2_500},
        created_at=now,
        expires_at=now + timedelta(hours=24),
    )


async def test_a_record_comes_back_whole_under_its_agency_and_key(cache):
    agency, other = uuid.uuid4(), uuid.uuid4()
    stored = record(agency, "key-1")
    await cache.put(stored)
    assert await cache.get(agency, "key-1") == stored
    assert await cache.get(agency, "key-2") is None
    assert await cache.get(other, "key-1") is None


async def test_a_broken_redis_is_a_miss_never_an_error():
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    cache = RedisIdempotencyCache(client)
    await cache.put(record(uuid.uuid4(), "k"))
    assert await cache.get(uuid.uuid4(), "k") is None
    await client.aclose()
