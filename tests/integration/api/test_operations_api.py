"""What operators rely on: readiness per dependency, shared rate limits, JSON logs."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.persistence import create_engine
from debtflow_adapters.persistence.migrate import alembic_config, upgrade
from debtflow_adapters.settings import MEMORY_URL
from debtflow_http.app import create_app
from debtflow_http.logs import JsonFormatter
from tests.conftest import DEFAULT_REDIS_URL
from tests.integration.api.conftest import START, Api, TestAdapters, make_settings


@pytest.fixture
def redis_url(redis_client) -> str:
    """The test Redis, once the ``redis_client`` fixture has found it up."""
    return os.environ.get("DEBTFLOW_TEST_REDIS_URL", DEFAULT_REDIS_URL)


async def test_readiness_reports_redis_when_it_is_configured(database_url, redis_url):
    app = create_app(make_settings(database_url, redis_url=redis_url))
    async with AsyncTestClient(app) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 200
    states = {d["name"]: d["state"] for d in ready.json()["dependencies"]}
    assert states == {
        "database": "up",
        "redis": "up",
        "object_storage": "up",
        "payment_gateway": "up",
    }


async def test_readiness_fails_when_a_required_dependency_is_down(database_url):
    unreachable = "redis://127.0.0.1:1/0"
    app = create_app(make_settings(database_url, redis_url=unreachable))
    async with AsyncTestClient(app) as client:
        ready = await client.get("/ready")
        assert (await client.get("/health")).status_code == 200
    assert ready.status_code == 503
    redis = next(d for d in ready.json()["dependencies"] if d["name"] == "redis")
    assert redis["state"] == "down"
    assert "127.0.0.1:1" not in ready.text


async def test_readiness_names_an_unreachable_broker_and_object_storage(database_url):
    settings = make_settings(
        database_url,
        broker_url="redis://127.0.0.1:1/0",
        storage_url="s3://exports",
        s3_endpoint_url="http://127.0.0.1:1",
    )
    async with AsyncTestClient(create_app(settings)) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 503
    down = {d["name"]: d["required"] for d in ready.json()["dependencies"] if d["state"] == "down"}
    assert down == {"broker": True, "object_storage": True}
    assert "127.0.0.1:1" not in ready.text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request: pytest.FixtureRequest) -> str:
    """A database of each dialect that no migration has touched."""
    return request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "fresh_postgres_url"
    )


async def test_readiness_fails_until_the_schema_is_migrated_to_this_code_or_beyond(
    unmigrated_url,
):
    """A replica started before (or without) ``debtflow migrate`` would answer every request
    with a 500: it is not ready. A schema a newer release migrated is (rolling upgrades)."""
    script = ScriptDirectory.from_config(alembic_config(unmigrated_url))
    head = script.get_current_head()
    previous = script.get_revision(head).down_revision

    async def database(client: AsyncTestClient) -> tuple[int, dict[str, object]]:
        ready = await client.get("/ready")
        [found] = [d for d in ready.json()["dependencies"] if d["name"] == "database"]
        return ready.status_code, found

    async with AsyncTestClient(create_app(make_settings(unmigrated_url))) as client:
        not_migrated = await database(client)
        await upgrade(unmigrated_url, previous)
        behind = await database(client)
        await upgrade(unmigrated_url)
        at_head = await database(client)
        engine = create_engine(unmigrated_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
        finally:
            await engine.dispose()
        ahead = await database(client)

    down = {"name": "database", "state": "down", "required": True}
    assert not_migrated == (503, {**down, "detail": "schema not migrated"})
    assert behind == (503, {**down, "detail": "schema behind"})
    up = (200, {"name": "database", "state": "up", "required": True, "detail": None})
    assert at_head == ahead == up


async def test_a_browser_on_an_allowed_origin_may_read_the_headers_the_api_answers_with():
    """Beyond the CORS-safelisted few (Content-Type…), a script of another origin sees a
    response header only if it is exposed: the request id to quote, the Retry-After of a
    429 or 503, a replay's Idempotent-Replayed, a POST's Location, a download's name and a
    401's challenge."""
    app = create_app(make_settings(MEMORY_URL, cors_origins=("https://app.example.com",)))
    async with AsyncTestClient(app) as client:
        answer = await client.get("/v1/me", headers={"Origin": "https://app.example.com"})

    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert exposed == {
        "x-request-id",
        "retry-after",
        "idempotent-replayed",
        "location",
        "content-disposition",
        "www-authenticate",
    }


async def test_sign_in_limits_are_shared_by_every_process_through_redis(
    database_url, redis_url, redis_client
):
    """Two app instances (two server processes) count one email's attempts together."""
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    settings = make_settings(database_url, redis_url=redis_url)
    first = create_app(settings, TestAdapters(clock))
    second = create_app(settings, TestAdapters(clock))
    async with AsyncTestClient(first) as one, AsyncTestClient(second) as two:
        api = Api(first, one, clock)
        async for key in redis_client.scan_iter("debtflow:rl:login:client:*"):
            await redis_client.delete(key)  # this client's attempts in earlier test runs
        slug = f"r{uuid.uuid4().hex[:10]}"
        await api.tenant(slug)  # one attempt for admin@… already
        wrong = {"email": f"admin@{slug}.example", "password": "not the password"}
        statuses = [
            (await (one if n % 2 else two).post("/v1/auth/token", json=wrong)).status_code
            for n in range(10)
        ]
    assert statuses == [401] * 9 + [429]


class JsonLines(logging.Handler):
    """Collects what the app logs, formatted exactly as its stderr handler formats it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        formatted = self.format(record)
        self.text += formatted + "\n"
        self.lines.append(json.loads(formatted))


@pytest.fixture
def logs(api):
    handler = JsonLines()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


async def test_log_lines_are_json_with_the_request_id(api, logs):
    response = await api.client.get("/health", headers={"X-Request-ID": "trace-me-42"})
    assert response.status_code == 200
    access = [line for line in logs.lines if line["logger"] == "debtflow.http.access"]
    assert access[-1]["request_id"] == "trace-me-42"
    assert (access[-1]["method"], access[-1]["path"], access[-1]["status"]) == (
        "GET",
        "/health",
        200,
    )
    assert {"time", "level", "message", "duration_ms"} <= set(access[-1])


async def test_a_task_a_request_queued_logs_the_requests_id_and_its_own(api, alpha, logs):
    headers = {**alpha.headers["admin"], "X-Request-ID": "trace-export-7"}

    response = await api.client.post("/v1/exports", json={"kind": "aging"}, headers=headers)
    assert response.status_code == 202, response.text
    export_id = response.json()["id"]
    for _ in range(500):  # the in-process worker's task writes it
        export = await api.client.get(f"/v1/exports/{export_id}", headers=headers)
        if export.json()["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.01)
    assert export.json()["status"] == "succeeded", export.text

    [started] = [
        line for line in logs.lines if "Executing task debtflow.run_export" in line["message"]
    ]
    [done] = [line for line in logs.lines if line["message"].startswith(f"export {export_id} ")]
    assert started["request_id"] == done["request_id"] == "trace-export-7"
    assert started["task_id"] == done["task_id"]
    assert started["message"].endswith(f" with ID: {done['task_id']}")
    access = [line for line in logs.lines if line["logger"] == "debtflow.http.access"]
    assert "task_id" not in access[-1]


async def test_a_sign_in_never_logs_the_password_or_the_tokens(api, alpha, logs):
    pair = await api.sign_in("admin@alpha.example")
    await api.client.get("/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert "/v1/auth/token" in logs.text
    assert "correct horse battery staple" not in logs.text
    assert pair["access_token"] not in logs.text
    assert pair["refresh_token"] not in logs.text


async def test_building_another_app_leaves_the_handlers_as_they_were():
    # Embedders and tests build many apps in one process: each must not wrap the
    # controllers' handlers once more (every request would go through every layer).
    from debtflow_http.resources.accounts import AccountController

    handlers = AccountController.get_route_handlers
    for _ in range(3):
        create_app(make_settings("memory://"))
    assert AccountController.get_route_handlers is handlers


async def test_the_heap_is_frozen_while_the_app_serves_and_handed_back_at_shutdown():
    """Start-up's objects stay out of the collector's full passes while serving (they made
    the p99 latency, docs/benchmarks.md); after shutdown nothing stays frozen, so a process
    that builds many apps (tests, embedders) frees them."""
    app = create_app(make_settings(MEMORY_URL))
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health")).status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
