"""The Redis broker as a worker uses it: waiting for its next job, however long that takes."""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as redis

from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq.broker import QUEUE, make_broker
from tests.conftest import service_missing

# A database of its own: the queue's name is the product's, and the e2e tests use 8 to 15.
BROKER_URL = os.environ.get("DEBTFLOW_TEST_IDLE_BROKER_URL", "redis://127.0.0.1:6379/7")
IDLE_SECONDS = 6  # past redis-py's default socket timeout, 5 s


async def test_a_worker_idle_past_the_socket_timeout_still_gets_the_next_job():
    client = redis.Redis.from_url(BROKER_URL)
    try:
        await client.delete(QUEUE)
    except redis.ConnectionError as error:
        await client.aclose()
        service_missing(f"Redis is unreachable ({BROKER_URL}): {error}")
    broker = make_broker(Settings(broker_url=BROKER_URL))
    await broker.startup()
    jobs = broker.listen()
    try:
        waiting = asyncio.ensure_future(anext(jobs))
        await asyncio.sleep(IDLE_SECONDS)
        # Had the wait raised, taskiq would restart the worker, killing its running tasks.
        assert not waiting.done(), waiting
        await client.lpush(QUEUE, b"a job")
        assert await asyncio.wait_for(waiting, 5) == b"a job"
    finally:
        await jobs.aclose()
        await broker.shutdown()
        await client.delete(QUEUE)
        await client.aclose()
