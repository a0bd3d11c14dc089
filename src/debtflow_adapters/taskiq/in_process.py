"""Background tasks inside the serving process, when no broker is configured.

The embedded default (no ``DEBTFLOW_BROKER_URL``) has no separate worker, yet webhook
events must still be applied. The serving process therefore runs the worker's own tasks on
an in-process broker, with its own container, so a task sees the very database (even the
in-memory store) the API writes to.

The tasks are imported by name, :data:`WORKER_TASKS`, the way uvicorn takes
``debtflow_http.app:create_app``: ``debtflow_adapters`` sits below ``debtflow_worker`` and
may not import it, and the HTTP app may not either (the two entrypoints stay independent).
Taking the tasks as an argument instead would move this wiring into every entrypoint
(``debtflow serve``, ``create_app`` under any ASGI server, embedders' tests), each
re-implementing the same choice; naming them here keeps one composition root. The tasks
are declared on taskiq's shared broker, so importing them is all a broker needs.

The schedule can run here too (:class:`InProcessScheduler`, with
``DEBTFLOW_IN_PROCESS_SCHEDULER``): the same sources as ``debtflow scheduler`` (the tasks'
labels, the file sources' crons), sending to the in-process broker. Only one process may
run it, so it is refused with a broker (``debtflow scheduler`` does it there) or with
several server workers (each would send every job).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module

from dishka import AsyncContainer
from dishka.integrations.taskiq import setup_dishka
from taskiq import AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.cli.scheduler.run import SchedulerLoop

from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq.broker import make_broker

WORKER_TASKS = "debtflow_worker.tasks"
"""The package whose import declares every task (see the module docstring)."""


@asynccontextmanager
async def in_process_broker(
    settings: Settings, container: AsyncContainer
) -> AsyncIterator[AsyncBroker]:
    """A started in-process broker whose tasks take their dependencies from
    ``container``. On exit it waits for the tasks already running, then stops."""
    import_module(WORKER_TASKS)
    broker = make_broker(settings)
    assert isinstance(broker, InMemoryBroker), "only without DEBTFLOW_BROKER_URL"
    setup_dishka(container, broker)
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.wait_all()
        await broker.shutdown()


class InProcessScheduler:
    """taskiq's scheduler loop as a task of this process's event loop, sending to the
    in-process broker. Like ``debtflow scheduler`` it skips the minute it starts in (a
    restart must not send that minute's jobs twice)."""

    def __init__(self, scheduler: TaskiqScheduler) -> None:
        self.scheduler = scheduler
        self._loop: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._loop.done()

    async def start(self) -> None:
        # Not scheduler.startup(): that would start the broker, which its owner started.
        for source in self.scheduler.sources:
            await source.startup()
        self._loop = asyncio.create_task(
            SchedulerLoop(self.scheduler).run(skip_first_run=True), name="debtflow-scheduler"
        )

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for source in self.scheduler.sources:
            await source.shutdown()
