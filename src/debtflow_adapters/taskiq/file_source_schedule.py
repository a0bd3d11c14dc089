"""The scheduler's view of the file sources: one cron schedule per active source."""

from __future__ import annotations

from dishka import AsyncContainer
from taskiq import ScheduledTask, ScheduleSource

from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.file_sources import POLL_FILE_SOURCE


class FileSourceSchedule(ScheduleSource):
    """Yields a ``debtflow.poll_file_source`` schedule for each active file source, on the
    source's own cron (UTC), read from the database each time the scheduler refreshes its
    schedules (every minute): a source created, changed or deactivated through the API is
    polled accordingly without restarting anything.

    Schedules are read-only here: they are the sources themselves. When the database does
    not answer, taskiq logs the error and that refresh has no file-source schedules; the
    scheduler goes on.
    """

    def __init__(self, container: AsyncContainer) -> None:
        self._container = container

    async def get_schedules(self) -> list[ScheduledTask]:
        async with self._container() as request:
            uow = await request.get(UnitOfWork)
            async with uow:
                sources = await uow.file_sources.list_active()
        return [
            ScheduledTask(
                task_name=POLL_FILE_SOURCE,
                labels={},
                args=[],
                kwargs={"source_id": str(source.id)},
                cron=source.schedule,
                schedule_id=f"file-source-{source.id}",
            )
            for source in sources
        ]
