from __future__ import annotations

from taskiq import AsyncBroker
from taskiq.kicker import AsyncKicker

from debtflow_adapters.taskiq.log_context import request_labels
from debtflow_core.ports.job_queue import JobQueue


class TaskiqJobQueue(JobQueue):
    """Sends jobs to a Taskiq broker by task name, so the sender never imports the task
    (the API does not import the worker). The worker applies each task's own policy
    (retries, timeouts) when it runs it; the message carries only the name, the arguments
    and, sent while a request is answered, its id, for the task's log lines (see
    :mod:`debtflow_adapters.taskiq.log_context`).
    """

    def __init__(self, broker: AsyncBroker) -> None:
        self._broker = broker

    async def enqueue(self, task: str, **arguments: str | int | None) -> None:
        kicker: AsyncKicker[..., object] = AsyncKicker(
            task_name=task, broker=self._broker, labels=request_labels()
        )
        await kicker.kiq(**arguments)
