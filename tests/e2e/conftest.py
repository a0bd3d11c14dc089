"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from debtflow_adapters.persistence.migrate import upgrade
from debtflow_adapters.taskiq.broker import QUEUE
from tests.conftest import PostgresServer, service_missing
from tests.support.s3 import s3_bucket, s3_emulator  # noqa: F401
from tests.support.stripe_emulator import stripe_emulator  # noqa: F401


def empty_queue_on(broker_url: str) -> Iterator[str]:
    """``broker_url`` with this pytest-xdist worker's own database, its job queue emptied
    before and after the test: a fixture's body. Each test module starts from a Redis
    database of its own, and each worker (up to four) adds its number to it, so that tests
    running at once never take each other's jobs."""
    parts = urlsplit(broker_url)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    database = int(parts.path.strip("/") or 0) + worker
    broker_url = urlunsplit(parts._replace(path=f"/{database}"))
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
