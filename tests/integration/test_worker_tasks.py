"""The worker's tasks, run by name on the in-process broker of a real container (the path
of ``debtflow serve`` without a broker), their schedules, and the retry policy."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from dishka import AsyncContainer
from prometheus_client import REGISTRY
from taskiq import AsyncBroker, InMemoryBroker, ScheduledTask, TaskiqMessage
from taskiq.kicker import AsyncKicker
from taskiq.serializers import PickleSerializer
from taskiq_redis import ListRedisScheduleSource

import debtflow_worker.tasks.exports as export_tasks
import debtflow_worker.tasks.imports as import_tasks
import debtflow_worker.tasks.maintenance as maintenance_tasks
import debtflow_worker.tasks.payments as payment_tasks
from debtflow_adapters.composition import make_container
from debtflow_adapters.memory import FixedClock
from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq import make_broker, make_scheduler
from debtflow_adapters.taskiq.file_source_schedule import FileSourceSchedule
from debtflow_adapters.taskiq.retries import GIVE_UP_LABEL, RETRY_LABEL, RetryMiddleware
from debtflow_core.actor import Actor
from debtflow_core.domain.imports import FileSourceKind
from debtflow_core.domain.payment import PaymentStatus
from debtflow_core.errors import NotFound, ValidationFailed
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.use_cases.accounts import NewAccount, PlaceAccount
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.exports import RUN_EXPORT
from debtflow_core.use_cases.file_sources import (
    POLL_FILE_SOURCE,
    CreateFileSource,
    DeactivateFileSource,
    NewFileSource,
)
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.payments import GetPayment, MakePayment, NewPayment
from tests.support.task_doubles import Overrides, SlowBank

START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


class Shop:
    def __init__(self, container: AsyncContainer, clock: FixedClock, bank: SlowBank) -> None:
        self.container = container
        self.clock = clock
        self.bank = bank
        self.actor: Actor
        self.account_id: Any
        self.processor_id: Any

    async def run(self, use_case: type[Any], *args: Any) -> Any:
        async with self.container() as request:
            return await (await request.get(use_case)).execute(*args)

    async def pay(self, key: str) -> Any:
        result = await self.run(
            MakePayment,
            self.actor,
            key,
            NewPayment(
                account_id=self.account_id,
                amount=100,
                currency="USD",
                processor_id=self.processor_id,
                payment_method="pm_card_visa",
            ),
        )
        return result.payment

    async def run_task(self, name: str) -> Any:
        """Send a task by name, as the API does, and wait for the in-process worker."""
        broker = await self.container.get(AsyncBroker)
        assert isinstance(broker, InMemoryBroker)
        sent = await AsyncKicker(task_name=name, broker=broker, labels={}).kiq()
        result = await sent.wait_result(timeout=10)
        assert not result.is_err, result.error
        return result.return_value


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    bank = SlowBank()
    settings = Settings(database_url="memory://", settle_after_seconds=600)
    container = make_container(settings, Overrides(clock, bank))
    shop = Shop(container, clock, bank)
    agency = await shop.run(CreateAgency, NewAgency(slug="acme", name="Acme"))
    shop.actor = Actor.system(agency.id)
    debtor = await shop.run(CreateDebtor, shop.actor, NewDebtor(first_name="A", last_name="B"))
    account = await shop.run(
        PlaceAccount,
        shop.actor,
        NewAccount(
            debtor_id=debtor.id,
            external_id="A-1",
            original_creditor="Bank",
            currency="USD",
            placed_balance=10_000,
        ),
    )
    processor = await shop.run(
        AddPaymentProcessor, shop.actor, NewPaymentProcessor(name="Sandbox", kind="sandbox")
    )
    shop.account_id, shop.processor_id = account.id, processor.id
    yield shop
    await container.close()


async def test_settle_waits_for_the_configured_delay_then_settles_once(shop: Shop):
    payment = await shop.pay("slow-1")
    assert payment.status is PaymentStatus.PENDING

    shop.clock.advance(timedelta(minutes=5))
    assert await shop.run_task(payment_tasks.SETTLE_PENDING_PAYMENTS) == 0
    shop.clock.advance(timedelta(minutes=6))  # past DEBTFLOW_SETTLE_AFTER_SECONDS=600
    assert await shop.run_task(payment_tasks.SETTLE_PENDING_PAYMENTS) == 1
    assert await shop.run_task(payment_tasks.SETTLE_PENDING_PAYMENTS) == 0

    settled = await shop.run(GetPayment, shop.actor, payment.id)
    assert settled.status is PaymentStatus.COMPLETED
    assert shop.bank.calls == {f"{shop.actor.agency_id}:slow-1:{payment.id}": 1}
    assert shop.bank.looked_up == {payment.gateway_reference: 1}


async def test_purge_removes_expired_keys_only(shop: Shop):
    await shop.pay("old")
    shop.clock.advance(timedelta(hours=20))
    await shop.pay("recent")
    shop.clock.advance(timedelta(hours=5))  # "old" is 25 h old, "recent" 5 h

    assert await shop.run_task(payment_tasks.PURGE_IDEMPOTENCY_KEYS) == 1
    assert await shop.run_task(payment_tasks.PURGE_IDEMPOTENCY_KEYS) == 0
    replayed = await shop.run(
        MakePayment,
        shop.actor,
        "recent",
        NewPayment(
            account_id=shop.account_id,
            amount=100,
            currency="USD",
            processor_id=shop.processor_id,
            payment_method="pm_card_visa",
        ),
    )
    assert replayed.replayed  # the recent key still answers


async def test_the_job_queue_runs_tasks_in_this_process_without_a_broker(shop: Shop):
    payment = await shop.pay("slow-2")
    shop.clock.advance(timedelta(minutes=11))
    async with shop.container() as request:
        await (await request.get(JobQueue)).enqueue(payment_tasks.SETTLE_PENDING_PAYMENTS)
    broker = await shop.container.get(AsyncBroker)
    assert isinstance(broker, InMemoryBroker)
    await broker.wait_all()
    assert (await shop.run(GetPayment, shop.actor, payment.id)).status is PaymentStatus.COMPLETED


ID = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("task", "arguments", "malformed"),
    [
        (POLL_FILE_SOURCE, {"source_id": "inbox"}, "source_id"),
        (import_tasks.IMPORT_PLACEMENT_FILE, {"run_id": ID, "agency_id": "acme"}, "agency_id"),
        (import_tasks.IMPORT_PLACEMENT_FILE, {"run_id": 42, "agency_id": ID}, "run_id"),
        (RUN_EXPORT, {"export_id": f"{ID}-x", "agency_id": ID}, "export_id"),
        (RUN_EXPORT, {"export_id": ID, "agency_id": None}, "agency_id"),
        (
            export_tasks.ABANDON_EXPORT,
            {"export_id": ID, "agency_id": ID, "attempts": "six"},
            "attempts",
        ),
    ],
)
async def test_a_task_given_a_malformed_argument_fails_at_once_naming_it(
    shop: Shop, caplog: pytest.LogCaptureFixture, task, arguments, malformed
):
    broker = await shop.container.get(AsyncBroker)
    assert isinstance(broker, InMemoryBroker)
    retried = REGISTRY.get_sample_value("debtflow_tasks_retried_total", {"task": task}) or 0.0

    with caplog.at_level(logging.WARNING, logger="debtflow.worker"):
        sent = await AsyncKicker(task_name=task, broker=broker, labels={}).kiq(**arguments)
        result = await sent.wait_result(timeout=10)

    assert isinstance(result.error, ValidationFailed)
    assert result.error.field == malformed
    # A poison message: the same arguments fail the same way, so it is not sent again.
    assert (
        REGISTRY.get_sample_value("debtflow_tasks_retried_total", {"task": task}) or 0.0
    ) == retried
    [logged] = [r.getMessage() for r in caplog.records if r.name == "debtflow.worker"]
    assert f"task {task}" in logged and "not retried" in logged
    assert f"{malformed} must be" in logged


async def test_the_scheduler_finds_the_scheduled_tasks_and_their_crons():
    broker = InMemoryBroker()
    scheduler = make_scheduler(broker, Settings())
    assert scheduler.broker is broker  # sends to the broker it is given
    [source] = scheduler.sources
    await source.startup()
    schedules = {s.task_name: s.cron for s in await source.get_schedules()}
    assert schedules == {
        payment_tasks.SETTLE_PENDING_PAYMENTS: "*/5 * * * *",
        payment_tasks.SETTLE_PENDING_REFUNDS: "*/5 * * * *",
        payment_tasks.PURGE_IDEMPOTENCY_KEYS: "17 * * * *",
        payment_tasks.RESUME_GATEWAY_EVENTS: "*/10 * * * *",
        export_tasks.QUEUE_NIGHTLY_EXPORTS: "30 0 * * *",
        export_tasks.PURGE_EXPORTS: "45 3 * * *",
        export_tasks.FAIL_STALLED_EXPORTS: "50 * * * *",
        maintenance_tasks.PURGE_SESSIONS: "23 3 * * *",
        maintenance_tasks.MAINTAIN_AUDIT_PARTITIONS: "41 2 * * *",
        import_tasks.RESUME_STALLED_IMPORTS: "*/10 * * * *",
    }


# --- The retry policy ---


@pytest.fixture
async def retrying() -> AsyncIterator[tuple[InMemoryBroker, Counter[str]]]:
    broker = InMemoryBroker().with_middlewares(
        RetryMiddleware(default_retry_count=3, default_delay=0.01, use_delay_exponent=True)
    )
    calls: Counter[str] = Counter()

    @broker.task(task_name="test.flaky", **{RETRY_LABEL: True, GIVE_UP_LABEL: "test.give_up"})
    async def flaky(fail_times: int) -> str:
        calls["flaky"] += 1
        if calls["flaky"] <= fail_times:
            raise ConnectionError("the database went away")
        return "done"

    @broker.task(task_name="test.give_up")
    async def give_up(fail_times: int, attempts: int) -> None:
        calls[f"give_up after {attempts} of {fail_times}"] += 1

    @broker.task(task_name="test.hopeless", **{RETRY_LABEL: True})
    async def hopeless() -> None:
        calls["hopeless"] += 1
        raise NotFound("no such event")

    @broker.task(task_name="test.once")
    async def once() -> None:
        calls["once"] += 1
        raise ConnectionError("not retried: the task does not allow it")

    @broker.task(task_name="test.other")
    async def other() -> None:
        calls["other"] += 1

    assert isinstance(broker, InMemoryBroker)
    await broker.startup()
    yield broker, calls
    await broker.shutdown()


async def _settle(broker: InMemoryBroker) -> None:
    """Let every retry waiting in this process run."""
    for _ in range(50):
        await broker.wait_all()
        await asyncio.sleep(0.02)


async def test_a_task_that_allows_it_is_retried_until_it_succeeds(retrying):
    broker, calls = retrying
    await AsyncKicker("test.flaky", broker, {}).kiq(fail_times=2)
    await _settle(broker)
    assert calls == {"flaky": 3}  # its give-up task not sent


async def test_a_task_that_keeps_failing_is_dropped_and_blocks_nothing(retrying):
    broker, calls = retrying
    await AsyncKicker("test.flaky", broker, {}).kiq(fail_times=100)
    await AsyncKicker("test.other", broker, {}).kiq()
    await _settle(broker)
    # Its give-up task was sent once, with its arguments and the attempts made.
    assert calls == {"flaky": 3, "other": 1, "give_up after 3 of 100": 1}


async def test_hopeless_errors_and_tasks_without_the_label_are_not_retried(retrying):
    broker, calls = retrying
    await AsyncKicker("test.hopeless", broker, {}).kiq()
    await AsyncKicker("test.once", broker, {}).kiq()
    await _settle(broker)
    assert calls == {"hopeless": 1, "once": 1}


def test_retries_back_off_doubling_up_to_ten_minutes():
    [policy] = [m for m in make_broker(Settings()).middlewares if isinstance(m, RetryMiddleware)]
    message = TaskiqMessage(task_id="t", task_name="test.flaky", labels={}, args=[], kwargs={})
    # SmartRetryMiddleware numbers the retries of a job from 1 and retries while the number
    # is below its attempts.
    delays = [policy.make_delay(message, retry) for retry in range(1, policy.default_retry_count)]
    assert [int(delay) for delay in delays] == [30, 60, 120, 240, 480]
    assert all(0 <= delay % 1 < 1 for delay in delays)  # the jitter, under a second
    assert int(policy.make_delay(message, 9)) == 600


async def test_with_a_broker_a_retry_waits_in_redis_for_the_scheduler(redis_client):
    """The worker does not hold a retry: it is stored as a one-off schedule, due after the
    backoff, which the scheduler's own source (same Redis, same prefix) reads back."""
    url = redis_client.connection_pool.connection_kwargs
    broker_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    prefix = f"debtflow-test:{uuid.uuid4().hex}"
    source = ListRedisScheduleSource(broker_url, prefix=prefix)
    broker = InMemoryBroker().with_middlewares(
        RetryMiddleware(default_retry_count=3, default_delay=120, schedule_source=source)
    )

    @broker.task(task_name="test.flaky_over_redis", **{RETRY_LABEL: True})
    async def flaky() -> None:
        raise ConnectionError("the database went away")

    assert isinstance(broker, InMemoryBroker)
    await broker.startup()
    try:
        before = datetime.now(UTC)
        await AsyncKicker("test.flaky_over_redis", broker, {}).kiq()
        await broker.wait_all()
        keys = [key.decode() async for key in redis_client.scan_iter(f"{prefix}:data:*")]
        [stored] = keys
        schedule = ScheduledTask.model_validate(
            PickleSerializer().loadb(await redis_client.get(stored))
        )
        assert schedule.task_name == "test.flaky_over_redis"
        assert int(schedule.labels["_retries"]) == 1
        assert schedule.time is not None
        assert schedule.time >= before + timedelta(seconds=119)
    finally:
        await broker.shutdown()
        async for key in redis_client.scan_iter(f"{prefix}:*"):
            await redis_client.delete(key)


async def test_the_scheduler_polls_each_active_file_source_on_its_own_cron(tmp_path):
    settings = Settings(database_url="memory://", sources_root=str(tmp_path))
    container = make_container(settings)
    try:
        async with container() as request:
            agency = await (await request.get(CreateAgency)).execute(
                NewAgency(slug="acme", name="Acme")
            )
        admin = Actor.system(agency.id)
        sources = []
        for name, schedule in [("hourly", "0 * * * *"), ("default", None), ("idle", None)]:
            command = NewFileSource(name=name, kind=FileSourceKind.LOCAL, directory=f"acme/{name}")
            if schedule is not None:
                command = msgspec.structs.replace(command, schedule=schedule)
            async with container() as request:
                sources.append(await (await request.get(CreateFileSource)).execute(admin, command))
        async with container() as request:
            await (await request.get(DeactivateFileSource)).execute(admin, sources[2].id)
        schedule = FileSourceSchedule(container)
        scheduler = make_scheduler(InMemoryBroker(), settings, schedule)
        assert scheduler.sources[-1] is schedule

        found = await schedule.get_schedules()

        assert sorted((s.kwargs["source_id"], s.cron) for s in found) == sorted(
            [(str(sources[0].id), "0 * * * *"), (str(sources[1].id), "*/15 * * * *")]
        )
        assert {s.task_name for s in found} == {POLL_FILE_SOURCE}
        assert {s.schedule_id for s in found} == {f"file-source-{s.id}" for s in sources[:2]}
    finally:
        await container.close()
