"""The schedule inside the serving process (the embedded default's only scheduler): its
loop sends due jobs to the in-process broker, and the app runs it from startup to
shutdown when ``DEBTFLOW_IN_PROCESS_SCHEDULER`` is on."""

from __future__ import annotations

import asyncio

from litestar.testing import AsyncTestClient
from taskiq import AsyncBroker, InMemoryBroker, ScheduledTask, ScheduleSource
from taskiq.schedule_sources import LabelScheduleSource

from debtflow_adapters.composition import make_container
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq import make_scheduler
from debtflow_adapters.taskiq.file_source_schedule import FileSourceSchedule
from debtflow_adapters.taskiq.in_process import InProcessScheduler
from debtflow_http.app import create_app
from debtflow_worker.tasks.maintenance import MAINTAIN_AUDIT_PARTITIONS, PURGE_SESSIONS
from debtflow_worker.tasks.payments import PURGE_IDEMPOTENCY_KEYS, SETTLE_PENDING_PAYMENTS


class EverySecond(ScheduleSource):
    async def get_schedules(self) -> list[ScheduledTask]:
        return [ScheduledTask(task_name="test.tick", labels={}, args=[], kwargs={}, interval=1)]


async def test_the_loop_sends_due_jobs_to_the_in_process_broker():
    settings = Settings(database_url="memory://")
    container = make_container(settings)
    ticked = asyncio.Event()
    try:
        broker = await container.get(AsyncBroker)
        assert isinstance(broker, InMemoryBroker)

        async def tick() -> None:
            ticked.set()

        broker.register_task(tick, task_name="test.tick")
        scheduler = InProcessScheduler(make_scheduler(broker, settings, EverySecond()))
        await scheduler.start()
        assert scheduler.running
        await asyncio.wait_for(ticked.wait(), timeout=10)
        await scheduler.stop()
        assert not scheduler.running
    finally:
        await container.close()


async def test_the_app_runs_the_schedule_from_startup_to_shutdown_when_asked():
    app = create_app(Settings(database_url="memory://", in_process_scheduler=True))
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health")).status_code == 200
        scheduler = await app.state.dishka_container.get(InProcessScheduler)
        assert scheduler.running
        labels, files = scheduler.scheduler.sources
        assert isinstance(files, FileSourceSchedule)
        assert isinstance(labels, LabelScheduleSource)
        assert {s.task_name for s in await labels.get_schedules()} >= {
            SETTLE_PENDING_PAYMENTS,
            PURGE_IDEMPOTENCY_KEYS,
            PURGE_SESSIONS,
            MAINTAIN_AUDIT_PARTITIONS,
        }
    assert not scheduler.running


def test_without_the_setting_the_app_starts_no_schedule():
    def startup(settings: Settings) -> list[str]:
        return [hook.__name__ for hook in create_app(settings).on_startup]

    asked = Settings(database_url="memory://", in_process_scheduler=True)
    assert "start_scheduler" in startup(asked)
    assert "start_scheduler" not in startup(Settings(database_url="memory://"))
