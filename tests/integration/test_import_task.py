"""The task ``debtflow.import_placement_file``, sent by name to an in-process broker with the
real container and the retry policy (short delays): retried while storage is down, never for
a missing backup or a malformed id, and a bad file fails its run without a retry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dishka import AsyncContainer, Provider, Scope, provide
from dishka.integrations.taskiq import setup_dishka
from prometheus_client import REGISTRY
from taskiq import InMemoryBroker
from taskiq.kicker import AsyncKicker

import debtflow_worker.tasks  # noqa: F401 - declares the tasks on the shared broker
from debtflow_adapters.composition import make_container
from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_adapters.memory.object_storage import InMemoryObjectStorage
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq.retries import RetryMiddleware
from debtflow_core.actor import Actor
from debtflow_core.domain.imports import ImportRun, ImportStatus
from debtflow_core.errors import StorageUnavailable
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.imports import (
    IMPORT_PLACEMENT_FILE,
    GetImportRun,
    QueuePlacementUpload,
    UploadedFile,
)
from tests.support.imports import placement_text


class FlakyStorage(InMemoryObjectStorage):
    """In memory, but down for the next ``outages`` downloads."""

    def __init__(self, links: SignedLinks) -> None:
        super().__init__(links)
        self.outages = 0
        self.downloads = 0

    async def get_file(self, key: str, destination: Path) -> None:
        self.downloads += 1
        if self.outages:
            self.outages -= 1
            raise StorageUnavailable("storage is down")
        await super().get_file(key, destination)


class Overrides(Provider):
    """Jobs kept rather than run (the test sends them itself), and flaky storage."""

    scope = Scope.APP

    jobs = provide(InMemoryJobQueue, provides=JobQueue, override=True)
    flaky = provide(FlakyStorage)

    @provide(override=True)
    def storage(self, flaky: FlakyStorage) -> ObjectStorage:
        return flaky


class Worker:
    def __init__(self, container: AsyncContainer, broker: InMemoryBroker, admin: Actor) -> None:
        self.container = container
        self.broker = broker
        self.admin = admin

    async def run(self, use_case: type[Any], *args: Any) -> Any:
        async with self.container() as request:
            return await (await request.get(use_case)).execute(*args)

    async def upload(self, path: Path, text: str) -> ImportRun:
        path.write_text(text)
        queued = await self.run(
            QueuePlacementUpload, self.admin, UploadedFile(path=path, file_name=path.name)
        )
        return queued.run

    async def send(self, run: ImportRun) -> None:
        """Send the job as the upload did, and let it and its retries run."""
        jobs = await self.container.get(JobQueue)
        assert isinstance(jobs, InMemoryJobQueue)
        task, arguments = jobs.jobs.pop()
        assert task == IMPORT_PLACEMENT_FILE
        assert arguments == {"run_id": str(run.id), "agency_id": str(run.agency_id)}
        await self.kick(**arguments)

    async def kick(self, **arguments: Any) -> None:
        """Send the task with ``arguments``, and let it and its retries run."""
        await AsyncKicker(IMPORT_PLACEMENT_FILE, self.broker, {}).kiq(**arguments)
        for _ in range(50):
            await self.broker.wait_all()
            await asyncio.sleep(0.02)

    async def storage(self) -> FlakyStorage:
        return await self.container.get(FlakyStorage)


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    settings = Settings(database_url="memory://", storage_url="memory://")
    container = make_container(settings, Overrides())
    broker = InMemoryBroker().with_middlewares(
        RetryMiddleware(default_retry_count=4, default_delay=0.01)
    )
    assert isinstance(broker, InMemoryBroker)
    setup_dishka(container, broker)
    await broker.startup()
    async with container() as request:
        agency = await (await request.get(CreateAgency)).execute(
            NewAgency(slug="acme", name="Acme")
        )
    yield Worker(container, broker, Actor.system(agency.id))
    await broker.shutdown()
    await container.close()


async def test_the_task_is_retried_while_storage_is_down(worker, tmp_path):
    run = await worker.upload(tmp_path / "may.csv", placement_text(4))
    storage = await worker.storage()
    storage.outages = 2

    await worker.send(run)

    done = await worker.run(GetImportRun, worker.admin, run.id)
    assert (done.status, done.rows_created) == (ImportStatus.SUCCEEDED, 4)
    assert storage.downloads == 3


async def test_a_bad_file_fails_its_run_once_without_a_retry(worker, tmp_path):
    run = await worker.upload(tmp_path / "bad.csv", "no,columns,we,know\r\n1,2,3,4\r\n")
    storage = await worker.storage()

    await worker.send(run)

    done = await worker.run(GetImportRun, worker.admin, run.id)
    assert done.status == ImportStatus.FAILED
    assert "required columns are missing" in (done.failure_reason or "")
    assert storage.downloads == 1


async def test_a_missing_backup_is_not_retried(worker, tmp_path):
    run = await worker.upload(tmp_path / "may.csv", placement_text(2))
    storage = await worker.storage()
    assert run.storage_key is not None
    await storage.delete(run.storage_key)

    await worker.send(run)

    still = await worker.run(GetImportRun, worker.admin, run.id)
    assert still.status == ImportStatus.QUEUED
    assert storage.downloads == 1


def retries() -> float:
    return (
        REGISTRY.get_sample_value("debtflow_tasks_retried_total", {"task": IMPORT_PLACEMENT_FILE})
        or 0.0
    )


@pytest.mark.parametrize(
    ("argument", "value"), [("agency_id", "acme"), ("run_id", "12345"), ("run_id", None)]
)
async def test_a_malformed_id_fails_the_job_at_once_and_says_so(
    worker, tmp_path, caplog, argument, value
):
    run = await worker.upload(tmp_path / "may.csv", placement_text(2))
    storage = await worker.storage()
    retried = retries()

    with caplog.at_level(logging.WARNING, logger="debtflow.worker"):
        await worker.kick(
            **{"run_id": str(run.id), "agency_id": str(run.agency_id), argument: value}
        )

    assert retries() == retried  # a poison message: running it again cannot succeed
    [logged] = [r.getMessage() for r in caplog.records if r.name == "debtflow.worker"]
    assert IMPORT_PLACEMENT_FILE in logged and "not retried" in logged
    assert f"{argument} must be a UUID, not {value!r}" in logged
    still = await worker.run(GetImportRun, worker.admin, run.id)
    assert still.status == ImportStatus.QUEUED
    assert storage.downloads == 0


async def test_a_job_sent_twice_imports_once(worker, tmp_path):
    run = await worker.upload(tmp_path / "may.csv", placement_text(3))
    jobs = await worker.container.get(JobQueue)
    assert isinstance(jobs, InMemoryJobQueue)
    jobs.jobs.append(jobs.jobs[-1])

    await worker.send(run)
    await worker.send(run)

    done = await worker.run(GetImportRun, worker.admin, run.id)
    assert (done.status, done.rows_read, done.rows_created) == (ImportStatus.SUCCEEDED, 3, 3)
