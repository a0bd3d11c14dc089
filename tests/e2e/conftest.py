"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from debtflow_adapters.persistence import upgrade
from debtflow_adapters.taskiq.broker import QUEUE
from tests.conftest import PostgresServer, service_missing
from tests.support.s3 import s3_bucket, s3_emulator  # noqa: F401
from tests.support.stripe_emulator import stripe_emulator  # noqa: F401


def empty_queue_on(broker_url: str) -> Iterator[str]:
    """``broker_url``, its job queue emptied before and after the test: a fixture's body.
    Each test module uses a Redis database of its own, so that they never take each
    other's jobs."""
    client = redis.Redis.from_url(broker_url)
    try:
        client.ping()
    except redis.ConnectionError as error:
        service_missing(f"Redis is unreachable ({broker_url}): {error}")
    client.delete(QUEUE)  # jobs a killed earlier run left behind
    yield broker_url
    client.delete(QUEUE)
    client.close()


@pytest.fixture
async def database(postgres_server: PostgresServer) -> str:
    """A new, migrated PostgreSQL database of this test's own."""
    url = await postgres_server.create_database()
    await upgrade(url)
    return url
