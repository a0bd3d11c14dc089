"""Task metrics on the broker the product builds (in-process here): a task that runs counts
as started and succeeded; one that fails counts as failed, and its retry as retried."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq import make_broker
from debtflow_adapters.taskiq.retries import RETRY_LABEL

COUNTERS = ("started", "succeeded", "failed", "retried")


def counts(task: str) -> dict[str, float]:
    values = {
        name: REGISTRY.get_sample_value(f"debtflow_tasks_{name}_total", {"task": task}) or 0.0
        for name in COUNTERS
    }
    values["timed"] = (
        REGISTRY.get_sample_value("debtflow_task_duration_seconds_count", {"task": task}) or 0.0
    )
    return values


# Task names of their own: the counters are process-global and other tests run tasks too.
async def test_a_task_that_fails_once_counts_its_failure_its_retry_and_its_success():
    broker = make_broker(Settings())
    attempts: list[int] = []

    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("the first attempt fails")

    async def steady() -> None:
        """Succeeds at once."""

    # No delay label: a retry waits at most its jitter (under a second) in this process.
    flaky_task = broker.register_task(
        flaky, "test.metrics.flaky", **{RETRY_LABEL: True, "delay": 0}
    )
    steady_task = broker.register_task(steady, "test.metrics.steady")
    await broker.startup()
    try:
        await steady_task.kiq()
        await flaky_task.kiq()
        for _ in range(300):
            if counts("test.metrics.flaky")["succeeded"] == 1:
                break
            await asyncio.sleep(0.01)
        await broker.wait_all()
    finally:
        await broker.shutdown()

    assert counts("test.metrics.steady") == {
        "started": 1,
        "succeeded": 1,
        "failed": 0,
        "retried": 0,
        "timed": 1,
    }
    assert counts("test.metrics.flaky") == {
        "started": 2,
        "succeeded": 1,
        "failed": 1,
        "retried": 1,
        "timed": 2,
    }
