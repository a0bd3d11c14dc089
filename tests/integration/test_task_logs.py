"""A background task's log lines on the broker the product builds (in-process here): each
names the task's id and the id of the HTTP request that queued the job, which the job
carries in a label; a job no request queued (a scheduled one) names none, whatever
request the context it was sent from had answered."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from taskiq import InMemoryBroker, TaskiqMessage, TaskiqMiddleware
from taskiq.kicker import AsyncKicker

from debtflow_adapters.logs import JsonFormatter, request_id_var
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq import TaskiqJobQueue, make_broker
from debtflow_adapters.taskiq.log_context import REQUEST_ID_LABEL, LogContextMiddleware
from debtflow_adapters.taskiq.retries import GIVE_UP_LABEL, RETRY_LABEL, RetryMiddleware


class JsonLines(logging.Handler):
    """The lines logged, formatted as the processes' stderr handler formats them: at once,
    in the context of the call that logs, where the formatter reads the ids."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    handler = JsonLines()
    logging.getLogger().addHandler(handler)
    yield handler.lines
    logging.getLogger().removeHandler(handler)


class Received(TaskiqMiddleware):
    """Keeps the labels of every message run."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[dict[str, Any]] = []

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        self.labels.append(message.labels)
        return message


async def test_a_job_queued_while_a_request_is_answered_carries_the_requests_id():
    received = Received()
    broker = InMemoryBroker().with_middlewares(received)

    async def labelled() -> None:
        """Does nothing: its message's labels are the point."""

    broker.register_task(labelled, "test.logs.labelled")
    queue = TaskiqJobQueue(broker)
    await broker.startup()
    try:
        token = request_id_var.set("req-42")
        try:
            await queue.enqueue("test.logs.labelled")
        finally:
            request_id_var.reset(token)
        await queue.enqueue("test.logs.labelled")  # answering no request
        await broker.wait_all()
    finally:
        await broker.shutdown()

    assert [labels.get(REQUEST_ID_LABEL) for labels in received.labels] == ["req-42", None]


async def test_a_task_logs_its_id_and_only_the_request_id_its_job_carries(logged):
    broker = make_broker(Settings())

    async def noted() -> None:
        logging.getLogger("debtflow.test").warning("noted")

    broker.register_task(noted, "test.logs.noted")
    await broker.startup()
    # Sent from the context of a request that queued neither job: the in-process broker
    # runs each in a copy of its sender's context.
    token = request_id_var.set("stale-request")
    try:
        queued = await AsyncKicker("test.logs.noted", broker, {REQUEST_ID_LABEL: "req-42"}).kiq()
        scheduled = await AsyncKicker("test.logs.noted", broker, {}).kiq()
        await broker.wait_all()
    finally:
        request_id_var.reset(token)
        await broker.shutdown()

    lines = [line for line in logged if line["logger"] == "debtflow.test"]
    assert [{k: v for k, v in line.items() if k.endswith("_id")} for line in lines] == [
        {"request_id": "req-42", "task_id": queued.task_id},
        {"task_id": scheduled.task_id},
    ]


async def test_the_job_sent_when_a_task_gives_up_carries_its_request_id_on():
    received = Received()
    broker = InMemoryBroker().with_middlewares(
        LogContextMiddleware(), RetryMiddleware(default_retry_count=1), received
    )

    async def failing() -> None:
        raise ConnectionError("the database went away")

    async def given_up(attempts: int) -> None:
        """Ends what ``failing`` began."""

    broker.register_task(
        failing, "test.logs.failing", **{RETRY_LABEL: True, GIVE_UP_LABEL: "test.logs.given_up"}
    )
    broker.register_task(given_up, "test.logs.given_up")
    await broker.startup()
    try:
        await AsyncKicker("test.logs.failing", broker, {REQUEST_ID_LABEL: "req-42"}).kiq()
        await broker.wait_all()  # the failing job, which sends the give-up job before it ends
        await broker.wait_all()
    finally:
        await broker.shutdown()

    assert [labels.get(REQUEST_ID_LABEL) for labels in received.labels] == ["req-42", "req-42"]
