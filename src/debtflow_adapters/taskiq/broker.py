"""The Taskiq broker and scheduler, built from the settings.

With ``DEBTFLOW_BROKER_URL`` the API sends jobs to a Redis list (taskiq-redis
``ListQueueBroker``, results in ``RedisAsyncResultBackend``) that ``debtflow worker``
processes consume; a ``RedisStreamBroker`` was seen not to exit on SIGTERM, a list queue
exits in seconds. Without it, an in-process broker runs the jobs in the serving process
itself (see :mod:`debtflow_adapters.taskiq.in_process`).

The tasks are not defined here: they live in ``debtflow_worker``, declared on taskiq's
shared broker, so that any broker built here finds them by name once they are imported.
"""

from __future__ import annotations

from taskiq import (
    AsyncBroker,
    InMemoryBroker,
    ScheduleSource,
    TaskiqScheduler,
    async_shared_broker,
)
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import ListQueueBroker, ListRedisScheduleSource, RedisAsyncResultBackend

from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq.log_context import LogContextMiddleware
from debtflow_adapters.taskiq.metrics import TaskMetricsMiddleware
from debtflow_adapters.taskiq.retries import RetryMiddleware

QUEUE = "debtflow:tasks"
RETRIES_PREFIX = "debtflow:retries"
RESULT_SECONDS = 3600
"""How long Redis keeps a task's result: long enough to look at, short enough to vanish."""

RETRY_ATTEMPTS = 6
"""A retried task runs at most this often: retried after 30 s, 1, 2, 4 and 8 minutes, so
an outage of a quarter of an hour is outlasted."""
RETRY_DELAY_SECONDS = 30
RETRY_MAX_DELAY_SECONDS = 600


def retry_source(settings: Settings) -> ScheduleSource | None:
    """Where retries wait until they are due: Redis with a broker URL, else nowhere."""
    if settings.broker_url is None:
        return None
    return ListRedisScheduleSource(settings.broker_url, prefix=RETRIES_PREFIX)


def make_broker(settings: Settings) -> AsyncBroker:
    """The broker of ``settings``, with the retry policy (see :class:`RetryMiddleware`),
    the tasks' metrics (:class:`TaskMetricsMiddleware`) and their ids on their log lines
    (:class:`LogContextMiddleware`, first, so that the other middlewares' lines have them).

    Call ``await broker.startup()`` before sending and ``await broker.shutdown()`` after.
    """
    broker: AsyncBroker
    if settings.broker_url is None:
        broker = InMemoryBroker()
    else:
        broker = ListQueueBroker(
            settings.broker_url,
            queue_name=QUEUE,
            # A worker waits for its next job in one BRPOP without a timeout, which must
            # outlast redis-py's default socket timeout (5 s since redis 8): past it the
            # client raises, and taskiq restarts the worker process, killing its running
            # tasks. Keepalive probes still find a peer that went away.
            socket_timeout=None,
            socket_keepalive=True,
        ).with_result_backend(
            RedisAsyncResultBackend(settings.broker_url, result_ex_time=RESULT_SECONDS)
        )
    return broker.with_middlewares(
        LogContextMiddleware(),
        TaskMetricsMiddleware(),
        RetryMiddleware(
            default_retry_count=RETRY_ATTEMPTS,
            default_delay=RETRY_DELAY_SECONDS,
            use_jitter=True,
            use_delay_exponent=True,
            max_delay_exponent=RETRY_MAX_DELAY_SECONDS,
            schedule_source=retry_source(settings),
        ),
    )


def make_scheduler(
    broker: AsyncBroker, settings: Settings, *extra_sources: ScheduleSource
) -> TaskiqScheduler:
    """The scheduler: the tasks' ``schedule`` labels, the retries that are due, and
    ``extra_sources`` (the worker adds the file sources' polls). It sends to ``broker``.
    The labels are read from the shared broker the tasks are declared on: a label source
    skips every task that is not its own broker's."""
    sources: list[ScheduleSource] = [LabelScheduleSource(async_shared_broker), *extra_sources]
    if (retries := retry_source(settings)) is not None:
        sources.append(retries)
    return TaskiqScheduler(broker, sources=sources)
