"""The worker's entrypoint: ``broker`` and ``scheduler`` for the Taskiq command line.

    taskiq worker debtflow_worker.app:broker
    taskiq scheduler debtflow_worker.app:scheduler --skip-first-run

(``debtflow worker`` and ``debtflow scheduler`` run the same, with checks first.) Both need
``DEBTFLOW_BROKER_URL``: without it there is no queue to share, and a server runs the tasks
in its own process instead.

A setting that is missing or wrong stops the import with one JSON line naming the variable,
and exit status 2. The scheduler then stops; taskiq's worker process manager starts another
worker in place of one that exits, whatever its status, so ``taskiq worker`` logs that line
again at every attempt: ``debtflow worker`` checks the settings first and stops at once.

The settings are read once, here; tasks get their use cases from the same composition root
as the API, plus dishka's ``TaskiqProvider``, one request scope per task. The tasks are
declared on taskiq's shared broker (so the in-process broker of a server finds them too)
and found by ``broker`` by name once :mod:`debtflow_worker.tasks` is imported. The
scheduler also polls every active file source on its own cron, read from the database
(:class:`~debtflow_adapters.taskiq.file_source_schedule.FileSourceSchedule`).
"""

from __future__ import annotations

import logging

from dishka.integrations.taskiq import TaskiqProvider, setup_dishka
from taskiq import TaskiqEvents, TaskiqState, async_shared_broker

from debtflow_adapters.composition import make_container
from debtflow_adapters.logs import configure_logging
from debtflow_adapters.settings import Settings, SettingsError, redact
from debtflow_adapters.taskiq import make_broker, make_scheduler
from debtflow_adapters.taskiq.file_source_schedule import FileSourceSchedule
from debtflow_worker import tasks

EXIT_BAD_SETTINGS = 2


def _settings() -> Settings:
    """The settings, which must name a broker and a database other processes can share."""
    settings = Settings.from_env()
    if settings.broker_url is None:
        raise SettingsError(
            [
                "DEBTFLOW_BROKER_URL is not set: the worker and the scheduler share their "
                "queue with the API through Redis (redis://HOST:PORT/DB); without one, "
                "'debtflow serve' runs the tasks in its own process"
            ]
        )
    if settings.in_memory:
        raise SettingsError(
            [
                "DEBTFLOW_DATABASE_URL: the in-memory store cannot be shared with a worker; "
                "point it at the API's database"
            ]
        )
    return settings


try:
    settings = _settings()
except SettingsError as error:
    configure_logging(Settings.log_level)  # the level set may be the wrong setting
    logging.getLogger("debtflow.worker").error("cannot start: %s", redact(str(error)))
    raise SystemExit(EXIT_BAD_SETTINGS) from None
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
