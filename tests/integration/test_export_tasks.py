"""The export tasks, sent by name to the in-process broker of a real container (the path of
``debtflow serve`` without a broker): nightly exports written by ``debtflow.run_export``,
then purged by ``debtflow.purge_exports``, twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dishka import AsyncContainer, Provider, Scope, provide
from dishka.integrations.taskiq import setup_dishka
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.kicker import AsyncKicker

import debtflow_worker.tasks.exports as export_tasks
from debtflow_adapters.composition import make_container
from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_adapters.memory import FixedClock
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_adapters.memory.object_storage import InMemoryObjectStorage
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq.retries import RetryMiddleware
from debtflow_core.actor import Actor
from debtflow_core.domain.export import ExportKind, ExportStatus
from debtflow_core.errors import StorageUnavailable
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.exports import (
    RUN_EXPORT,
    GetExport,
    ListExports,
    NewExport,
    RequestExport,
)

START = datetime(2026, 5, 4, 0, 30, tzinfo=UTC)


class Clocked(Provider):
    def __init__(self, clock: FixedClock) -> None:
        super().__init__()
        self._clock = clock

    @provide(scope=Scope.APP, override=True)
    def clock(self) -> Clock:
        return self._clock


@pytest.fixture
async def container() -> AsyncIterator[AsyncContainer]:
    settings = Settings(
        database_url="memory://",
        storage_url="memory://",
        nightly_exports=(ExportKind.AGING, ExportKind.IMPORTS),
        export_retention_days=30,
    )
    container = make_container(settings, Clocked(FixedClock(START)))
    yield container
    await container.close()


async def send(container: AsyncContainer, name: str, **arguments: Any) -> Any:
    """Send a task by name, as the API does; its result once the in-process worker ran it
    and every job it sent in turn."""
    broker = await container.get(AsyncBroker)
    assert isinstance(broker, InMemoryBroker)
    sent = await AsyncKicker(task_name=name, broker=broker, labels={}).kiq(**arguments)
    result = await sent.wait_result(timeout=10)
    await broker.wait_all()
    return result


async def test_nightly_exports_are_written_then_purged_once(container):
    async with container() as request:
        agency = await (await request.get(CreateAgency)).execute(NewAgency(slug="acme", name="A"))
    actor = Actor.system(agency.id)
    clock = await container.get(Clock)
    assert isinstance(clock, FixedClock)

    queued = await send(container, export_tasks.QUEUE_NIGHTLY_EXPORTS)
    again = await send(container, export_tasks.QUEUE_NIGHTLY_EXPORTS)
    async with container() as request:
        listed = (await (await request.get(ListExports)).execute(actor)).items

    assert (queued.return_value, again.return_value) == (2, 0)
    assert sorted(e.kind for e in listed) == [ExportKind.AGING, ExportKind.IMPORTS]
    assert {e.status for e in listed} == {ExportStatus.SUCCEEDED}
    storage = await container.get(ObjectStorage)
    assert all([await storage.exists(e.storage_key) for e in listed])

    clock.advance(timedelta(days=31))
    first = await send(container, export_tasks.PURGE_EXPORTS)
    second = await send(container, export_tasks.PURGE_EXPORTS)

    assert (first.return_value, second.return_value) == (2, 0)
    assert not any([await storage.exists(e.storage_key) for e in listed])
    async with container() as request:
        assert (await (await request.get(ListExports)).execute(actor)).items == []


async def test_running_a_missing_export_fails_for_good(container, caplog):
    result = await send(
        container, RUN_EXPORT, export_id=str(uuid.uuid4()), agency_id=str(uuid.uuid4())
    )
    assert result.is_err
    assert "was not found" in str(result.error)
    assert f"task {RUN_EXPORT} failed for good" in caplog.text  # not retried


class StorageDown(Provider):
    """Storage that refuses every file, and the request's jobs kept for the test to send."""

    scope = Scope.APP

    jobs = provide(InMemoryJobQueue, provides=JobQueue, override=True)

    @provide(override=True)
    def storage(self, links: SignedLinks) -> ObjectStorage:
        class Down(InMemoryObjectStorage):
            async def put_file(self, key: str, path: Path, *, content_type: str) -> None:
                raise StorageUnavailable("storage is down")

        return Down(links)


async def test_an_export_whose_retries_all_fail_is_failed_at_once(caplog):
    settings = Settings(database_url="memory://", storage_url="memory://")
    container = make_container(settings, StorageDown())  # its own broker: short retries
    broker = InMemoryBroker().with_middlewares(
        RetryMiddleware(default_retry_count=3, default_delay=0.01)
    )
    assert isinstance(broker, InMemoryBroker)
    setup_dishka(container, broker)
    await broker.startup()
    try:
        async with container() as request:
            agency = await (await request.get(CreateAgency)).execute(
                NewAgency(slug="acme", name="A")
            )
            actor = Actor.system(agency.id)
            export = await (await request.get(RequestExport)).execute(
                actor, NewExport(kind=ExportKind.AGING)
            )
        jobs = await container.get(JobQueue)
        assert isinstance(jobs, InMemoryJobQueue)
        task, arguments = jobs.jobs.pop()
        await AsyncKicker(task, broker, {}).kiq(**arguments)
        for _ in range(50):
            await broker.wait_all()
            await asyncio.sleep(0.02)
        async with container() as request:
            failed = await (await request.get(GetExport)).execute(actor, export.id)
    finally:
        await broker.shutdown()
        await container.close()

    assert failed.status is ExportStatus.FAILED
    assert failed.failure_reason.startswith("its job failed 3 times")
    assert f"task {RUN_EXPORT} gave up after 3 attempts: storage is down" in caplog.text
