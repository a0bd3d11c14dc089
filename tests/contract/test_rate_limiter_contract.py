"""RateLimiter: fixed windows per key, shared by every user of one store."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from debtflow_adapters.composition import redis_client
from debtflow_adapters.memory import FixedClock, InMemoryRateLimiter
from debtflow_adapters.redis.rate_limiter import RedisRateLimiter
from debtflow_core.ports.rate_limiter import RateLimiter

WINDOW = timedelta(minutes=1)


@pytest.fixture(params=["memory", "redis"])
def limiter(request) -> RateLimiter:
    clock = FixedClock(datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC))
    if request.param == "memory":
        return InMemoryRateLimiter(clock)
    client = request.getfixturevalue("redis_client")
    return RedisRateLimiter(client, clock, prefix=f"test:{uuid.uuid4()}:")


async def test_a_key_may_make_limit_attempts_per_window(limiter):
    waits = [await limiter.hit("login:email:a", limit=3, window=WINDOW) for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert all(0 < wait <= 60 for wait in waits[3:])


async def test_keys_are_counted_apart(limiter):
    for _ in range(3):
        await limiter.hit("login:client:1", limit=3, window=WINDOW)
    assert await limiter.hit("login:client:2", limit=3, window=WINDOW) == 0
    assert await limiter.hit("login:client:1", limit=3, window=WINDOW) > 0


async def test_a_new_window_starts_a_new_count():
    clock = FixedClock(datetime(2026, 1, 1, 12, 0, 50, tzinfo=UTC))
    limiter = InMemoryRateLimiter(clock)
    assert [await limiter.hit("k", limit=1, window=WINDOW) for _ in range(2)] == [0, 10]
    clock.advance(timedelta(seconds=10))
    assert await limiter.hit("k", limit=1, window=WINDOW) == 0


async def test_the_memory_limiter_forgets_windows_that_have_ended():
    clock = FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    limiter = InMemoryRateLimiter(clock)
    for n in range(100):
        await limiter.hit(f"caller-{n}", limit=1, window=timedelta(minutes=15))
    clock.advance(timedelta(minutes=16))

    assert await limiter.hit("caller-0", limit=1, window=timedelta(minutes=15)) == 0
    assert len(limiter._windows) == 1  # the other 99 callers' ended windows are gone


async def test_a_redis_that_never_answers_lets_attempts_through_in_seconds():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the request, answers nothing, until the client leaves
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = redis_client(f"redis://127.0.0.1:{port}/0")
    limiter = RedisRateLimiter(client, FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    try:
        async with asyncio.timeout(10):
            assert await limiter.hit("login:client:1", limit=1, window=WINDOW) == 0
    finally:
        await client.aclose()
        server.close()


async def test_a_broken_redis_lets_attempts_through():
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = RedisRateLimiter(client, FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    assert await limiter.hit("login:email:a", limit=1, window=WINDOW) == 0
    await client.aclose()
