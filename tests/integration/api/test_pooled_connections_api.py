"""No pooled connection waits on a client: none is held while a request's body arrives, while
an answer is read, or while a password is checked; a request without a body still runs its
token check and its operation on one connection.

A connection kept through such a wait let any signed-in user, read-only included, hold one
per request for as long as they took to send a body: 30 stalled uploads emptied a process's
pool, and every other request failed after waiting for one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool

from debtflow_adapters.memory import FastPasswordHasher, FixedClock
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.password_hasher import PasswordHasher
from debtflow_http.app import create_app
from tests.integration.api.conftest import PASSWORD, START, Api, make_settings

STALLED = 5


async def _pool(app: Litestar) -> Pool:
    engine = await app.state.dishka_container.get(AsyncEngine)
    return engine.sync_engine.pool


@contextmanager
def _checkouts(pool: Pool) -> Iterator[list[object]]:
    """The checkouts from ``pool`` made inside the block, one item each."""
    taken: list[object] = []

    def count(*_: Any) -> None:
        taken.append(None)

    event.listen(pool, "checkout", count)
    try:
        yield taken
    finally:
        event.remove(pool, "checkout", count)


# A body announced by its length is small enough to be read before the token check; a
# chunked one is read after it (an upload's size is not known in advance).
_FIRST, _REST = b'{"first_name": "Ada", ', b'"last_name": "Lovelace"}'


@pytest.mark.parametrize(
    "framing",
    [{"transfer-encoding": "chunked"}, {"content-length": str(len(_FIRST + _REST))}],
    ids=["chunked", "content-length"],
)
async def test_a_client_sending_its_body_slowly_holds_no_connection(api, alpha, framing):
    pool = await _pool(api.app)
    idle = pool.checkedout()
    stalled = asyncio.Semaphore(0)
    resume = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield _FIRST
        # Asked for more: the app waits for the rest.
        stalled.release()
        await resume.wait()
        yield _REST

    headers = {**alpha.headers["readonly"], "content-type": "application/json", **framing}
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        posts = [
            asyncio.create_task(client.post("/v1/debtors", headers=headers, content=slow_body()))
            for _ in range(STALLED)
        ]
        try:
            for _ in range(STALLED):
                await asyncio.wait_for(stalled.acquire(), timeout=30)
            held = pool.checkedout()
        finally:
            resume.set()
            answers = await asyncio.gather(*posts)
    assert held == idle
    # Read, and refused as a read-only user's: the body was waited for, not dropped.
    assert [answer.status_code for answer in answers] == [403] * STALLED


async def test_a_request_come_whole_checks_its_token_on_its_operations_connection(api, alpha):
    await alpha.account("A-1")
    pool = await _pool(api.app)
    admin = alpha.headers["admin"]
    for path in ["/v1/accounts", "/v1/me"]:
        with _checkouts(pool) as taken:
            assert (await api.client.get(path, headers=admin)).status_code == 200
        assert len(taken) == 1, path
    with _checkouts(pool) as taken:
        created = await api.client.post(
            "/v1/debtors", headers=admin, json={"first_name": "Grace", "last_name": "Hopper"}
        )
    assert created.status_code == 201
    assert len(taken) == 1  # a small body: read before the token check


async def test_a_request_whose_body_follows_the_token_check_takes_a_connection_for_each(api, alpha):
    admin = alpha.headers["admin"]
    pool = await _pool(api.app)

    async def body() -> AsyncIterator[bytes]:
        yield b'{"first_name": "Grace", "last_name": "Hopper"}'

    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with _checkouts(pool) as taken:
            created = await client.post(
                "/v1/debtors",
                headers={**admin, "content-type": "application/json"},
                content=body(),  # chunked: of no known length, read after the token check
            )
    assert created.status_code == 201
    assert len(taken) == 2


@pytest.mark.parametrize(
    "path",
    [
        "/v1/accounts",
        # The report reads on a connection of its own: the request's unit of work never
        # uses the connection the token check kept for it.
        "/v1/reports/aging?as_of=2026-03-02",
    ],
)
async def test_a_client_reading_the_answer_slowly_holds_no_connection(api, alpha, path):
    await alpha.account("A-1")
    pool = await _pool(api.app)
    idle = pool.checkedout()
    reading = asyncio.Event()
    resume = asyncio.Event()
    started: list[int] = []
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "headers": [
            (b"host", b"test"),
            (b"authorization", alpha.headers["admin"]["Authorization"].encode()),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(message["status"])
        elif message["type"] == "http.response.body" and not reading.is_set():
            reading.set()  # a client that reads the answer as slowly as it likes
            await resume.wait()

    answering = asyncio.create_task(api.app(scope, receive, send))
    try:
        await asyncio.wait_for(reading.wait(), timeout=30)
        held = pool.checkedout()
    finally:
        resume.set()
        await answering
    assert started == [200]
    assert held == idle


class _PoolWatchingHasher(FastPasswordHasher):
    """Notes how many connections are checked out while it checks a password."""

    def __init__(self) -> None:
        self.pool: Pool | None = None
        self.checked_out: list[int] = []

    def verify(self, password_hash: str, password: str) -> bool:
        if self.pool is not None:
            self.checked_out.append(self.pool.checkedout())
        return super().verify(password_hash, password)


class _Watched(Provider):
    def __init__(self, clock: FixedClock, hasher: _PoolWatchingHasher) -> None:
        super().__init__()
        self._clock = clock
        self._hasher = hasher

    @provide(scope=Scope.APP, override=True)
    def hasher(self) -> PasswordHasher:
        return self._hasher

    @provide(scope=Scope.APP, override=True)
    def clock(self) -> Clock:
        return self._clock


async def test_signing_in_checks_the_password_holding_no_connection(database_url):
    hasher = _PoolWatchingHasher()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(make_settings(database_url), _Watched(clock, hasher))
    async with AsyncTestClient(app) as client:
        await Api(app, client, clock).tenant("alpha")
        hasher.pool = await _pool(app)
        idle = hasher.pool.checkedout()
        for email, password, status in [
            ("collector@alpha.example", PASSWORD, 200),
            ("collector@alpha.example", "wrong", 401),
            ("nobody@alpha.example", "wrong", 401),  # checked against a decoy hash
        ]:
            answer = await client.post(
                "/v1/auth/token", json={"email": email, "password": password}
            )
            assert answer.status_code == status
    assert hasher.checked_out == [idle] * 3
