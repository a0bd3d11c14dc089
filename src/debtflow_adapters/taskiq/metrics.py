"""Background tasks in Prometheus: started, succeeded, failed and their duration, by name.

Retries are counted by :class:`~debtflow_adapters.taskiq.retries.RetryMiddleware`, which
decides them. In ``debtflow worker`` every taskiq process writes to the shared multiprocess
directory and the supervising process serves their sum (see
:mod:`debtflow_adapters.worker_process`); tasks a server runs in its own process
show in its ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from debtflow_adapters.prometheus.metrics import (
    TASK_DURATION,
    TASKS_FAILED,
    TASKS_STARTED,
    TASKS_SUCCEEDED,
)


class TaskMetricsMiddleware(TaskiqMiddleware):
    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        TASKS_STARTED.labels(message.task_name).inc()
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        finished = TASKS_FAILED if result.is_err else TASKS_SUCCEEDED
        finished.labels(message.task_name).inc()
        TASK_DURATION.labels(message.task_name).observe(result.execution_time)
