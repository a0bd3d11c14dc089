"""The export tasks, sent by name to the in-process broker of a real container (the path of
``debtflow serve`` without a broker): nightly exports written by ``debtflow.run_export``,
then purged by ``debtflow.purge_exports``, twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dishka import AsyncContainer, Provider, Scope, provide
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.kicker import AsyncKicker

import debtflow_worker.tasks.exports as export_tasks
from debtflow_adapters.composition import make_container
from debtflow_adapters.memory import FixedClock
from debtflow_adapters.settings import Settings
from debtflow_core.actor import Actor
from debtflow_core.domain.export import ExportKind, ExportStatus
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.exports import RUN_EXPORT, ListExports

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
