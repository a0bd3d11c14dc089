"""The worker's entrypoint: ``broker`` and ``scheduler`` for the Taskiq command line.

    taskiq worker debtflow_worker.app:broker
    taskiq scheduler debtflow_worker.app:scheduler --skip-first-run

(``debtflow worker`` and ``debtflow scheduler`` run the same, with checks first.) Both need
``DEBTFLOW_BROKER_URL``: without it there is no queue to share, and a server runs the tasks
in its own process instead.

The settings are read once, here; tasks get their use cases from the same composition root
as the API, plus dishka's ``TaskiqProvider``, one request scope per task. The tasks are
declared on taskiq's shared broker (so the in-process broker of a server finds them too)
and found by ``broker`` by name once :mod:`debtflow_worker.tasks` is imported. The
scheduler also polls every active file source on its own cron, read from the database
(:class:`~debtflow_adapters.taskiq.file_source_schedule.FileSourceSchedule`).
"""

from __future__ import annotations

from dishka.integrations.taskiq import TaskiqProvider, setup_dishka
from taskiq import TaskiqEvents, TaskiqState, async_shared_broker

from debtflow_adapters.composition import make_container
from debtflow_adapters.logs import configure_logging
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq import make_broker, make_scheduler
from debtflow_adapters.taskiq.file_source_schedule import FileSourceSchedule
from debtflow_worker import tasks

settings = Settings.from_env()
configure_logging(settings.log_level)  # JSON lines, as the API's; taskiq's own is told not to
broker = make_broker(settings)
async_shared_broker.default_broker(broker)
container = make_container(settings, TaskiqProvider())
scheduler = make_scheduler(broker, settings, FileSourceSchedule(container))
setup_dishka(container, broker)

__all__ = ["broker", "scheduler", "tasks"]


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def _close_container(state: TaskiqState) -> None:
    await container.close()
