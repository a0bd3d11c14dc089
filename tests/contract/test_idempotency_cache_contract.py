"""IdempotencyCache: the in-process cache and Redis keep finished records alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from debtflow_adapters.clock import SystemClock
from debtflow_adapters.memory.clock import FixedClock
from debtflow_adapters.memory.idempotency_cache import InMemoryIdempotencyCache
from debtflow_adapters.redis.idempotency_cache import RedisIdempotencyCache
from debtflow_core.ports.idempotency import IdempotencyCache, IdempotencyRecord, IdempotencyState


@pytest.fixture(params=["memory", "redis"])
def cache(request) -> IdempotencyCache:
    if request.param == "memory":
        return InMemoryIdempotencyCache(SystemClock())
    client = request.getfixturevalue("redis_client")
    return RedisIdempotencyCache(client, prefix=f"test:{uuid.uuid4()}:")


def record(agency_id: uuid.UUID, key: str, now: datetime | None = None) -> IdempotencyRecord:
    now = now or datetime.now(UTC)
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


async def test_a_record_past_its_time_is_not_kept(cache):
    agency = uuid.uuid4()
    await cache.put(record(agency, "old", datetime.now(UTC) - timedelta(hours=25)))
    assert await cache.get(agency, "old") is None


async def test_the_in_process_cache_forgets_records_as_they_expire():
    clock = FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    cache = InMemoryIdempotencyCache(clock)
    agency = uuid.uuid4()
    for n in range(3):
        await cache.put(record(agency, f"day-1-{n}", clock.now()))
    clock.advance(timedelta(hours=23))
    await cache.put(record(agency, "day-2", clock.now()))
    assert await cache.get(agency, "day-1-0") is not None

    clock.advance(timedelta(hours=2))
    assert await cache.get(agency, "day-1-0") is None
    await cache.put(record(agency, "day-3", clock.now()))
    # A server's memory holds only the records still live: the expired ones are dropped.
    assert list(cache._records) == [(agency, "day-2"), (agency, "day-3")]


@pytest.mark.parametrize("value", [b'{"agency_id": "x"}', b'{"agency_id": "', b"\xff"])
async def test_a_value_redis_cannot_decode_is_a_miss_never_an_error(redis_client, value, caplog):
    prefix = f"test:{uuid.uuid4()}:"
    cache = RedisIdempotencyCache(redis_client, prefix=prefix)
    agency = uuid.uuid4()
    await redis_client.set(f"{prefix}{agency}:k", value, ex=60)  # another release's, say
    try:
        assert await cache.get(agency, "k") is None
        assert "idempotency cache entry unreadable" in caplog.messages
        stored = record(agency, "k")
        await cache.put(stored)
        assert await cache.get(agency, "k") == stored
    finally:
        await redis_client.delete(f"{prefix}{agency}:k")
