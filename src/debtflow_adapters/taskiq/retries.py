from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from taskiq import SmartRetryMiddleware, TaskiqMessage, TaskiqResult
from taskiq.kicker import AsyncKicker

from debtflow_adapters.prometheus.metrics import TASKS_RETRIED
from debtflow_adapters.taskiq.log_context import request_labels
from debtflow_core.errors import NotFound, ValidationFailed

log = logging.getLogger("debtflow.worker")

RETRY_LABEL = "retry_on_error"
"""Set it on a task (``@broker.task(..., retry_on_error=True)``) that is safe to run again."""

GIVE_UP_LABEL = "on_give_up"
"""Set it to a task's name on a retried task (``on_give_up="debtflow.…"``): when the last
attempt fails too, that task is sent with the same arguments and ``attempts``, to end
for good what the failed one had begun."""

_HOPELESS = (NotFound, ValidationFailed)


class RetryMiddleware(SmartRetryMiddleware):
    """Retries a failed task with exponential backoff, if the task allows it.

    Whether a task may be retried is read from the task as the worker registered it, not
    from the message: jobs are sent by name (see :class:`TaskiqJobQueue`), so the message
    carries none of the task's labels. A NotFound or ValidationFailed is not retried (the
    same arguments fail the same way: a malformed message, an id that is no UUID, is one of
    those, see :mod:`debtflow_worker.arguments`). After ``default_retry_count`` attempts the job is
    dropped with a warning, and its give-up task sent if it names one (:data:`GIVE_UP_LABEL`);
    nothing waits on it, so it never blocks the queue.

    The delay: with a schedule source (Redis), the retry is stored there and the scheduler
    sends it when it is due, at its minute's resolution, so it survives a worker restart;
    without one (the in-process broker), it waits in this process.
    """

    def __init__(self, **options: Any) -> None:
        """``options`` are SmartRetryMiddleware's."""
        super().__init__(**options)
        # Held so that the event loop does not collect a retry waiting in this process.
        self._waiting: set[asyncio.Task[None]] = set()

    def make_delay(self, message: TaskiqMessage, retries: int) -> float:
        """With ``use_delay_exponent``, the base delay doubled at each retry (30 s, 60 s,
        120 s… for a base of 30 s) up to ``max_delay_exponent``; plus up to a second of
        jitter with ``use_jitter``. SmartRetryMiddleware's own backoff grows only linearly
        (the base times the retry's number), so a few minutes' outage used every attempt up."""
        delay = float(message.labels.get("delay", self.default_delay))
        if self.use_delay_exponent:
            delay = min(delay * 2 ** (retries - 1), self.max_delay_exponent)
        return delay + random.random() if self.use_jitter else delay

    def is_retry_on_error(self, message: TaskiqMessage) -> bool:
        task = self.broker.find_task(message.task_name)
        return bool(task is not None and task.labels.get(RETRY_LABEL))

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        if isinstance(exception, _HOPELESS):
            log.warning(
                "task %s failed for good, not retried (job %s): %s",
                message.task_name,
                message.task_id,
                exception,
            )
            return
        # Read before the retry is sent: sending it counts the attempt in these labels.
        attempts = int(message.labels.get("_retries", 0)) + 1
        last = int(message.labels.get("max_retries", self.default_retry_count))
        await super().on_error(message, result, exception)
        task = self.broker.find_task(message.task_name)
        give_up = task.labels.get(GIVE_UP_LABEL) if task is not None else None
        if give_up and self.is_retry_on_error(message) and attempts >= last:
            log.warning(
                "task %s gave up after %d attempts: %s", message.task_name, attempts, exception
            )
            kicker: AsyncKicker[Any, Any] = AsyncKicker(give_up, self.broker, request_labels())
            await kicker.kiq(*message.args, **message.kwargs, attempts=attempts)

    async def on_send(
        self, kicker: AsyncKicker[Any, Any], message: TaskiqMessage, delay: float
    ) -> None:
        TASKS_RETRIED.labels(message.task_name).inc()
        if self.schedule_source is not None:
            await super().on_send(kicker, message, delay)
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await kicker.kiq(*message.args, **message.kwargs)

        task = asyncio.create_task(later())
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def shutdown(self) -> None:
        for task in list(self._waiting):
            task.cancel()
