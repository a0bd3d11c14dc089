"""Every scheduled maintenance task, run by name on the in-process broker of a real
container over each store, twice in a row: the first run does its work, the second finds
nothing left to do and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dishka import AsyncContainer
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.kicker import AsyncKicker

from debtflow_adapters.composition import make_container
from debtflow_adapters.memory import FixedClock
from debtflow_adapters.settings import Settings
from debtflow_core.actor import Actor
from debtflow_core.domain.payment import PaymentStatus
from debtflow_core.domain.user import Role
from debtflow_core.errors import Unauthenticated
from debtflow_core.use_cases.accounts import NewAccount, PlaceAccount
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.auth import Authenticate, Credentials, Login, Logout, Refresh
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.payment_processors import AddPaymentProcessor, NewPaymentProcessor
from debtflow_core.use_cases.payments import GetPayment, MakePayment, NewPayment
from debtflow_core.use_cases.users import CreateUser, NewUser
from debtflow_worker.tasks.maintenance import MAINTAIN_AUDIT_PARTITIONS, PURGE_SESSIONS
from debtflow_worker.tasks.payments import PURGE_IDEMPOTENCY_KEYS, SETTLE_PENDING_PAYMENTS
from tests.support.audit_partitions import attached_partitions, restore_audit_partitions
from tests.support.task_doubles import Overrides, SlowBank

START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


class Site:
    def __init__(self, container: AsyncContainer, clock: FixedClock) -> None:
        self.container = container
        self.clock = clock

    async def run(self, use_case: type[Any], *args: Any) -> Any:
        async with self.container() as request:
            return await (await request.get(use_case)).execute(*args)

    async def run_task(self, name: str) -> Any:
        """Send a task by name, as the scheduler does, and wait for the in-process worker."""
        broker = await self.container.get(AsyncBroker)
        assert isinstance(broker, InMemoryBroker)
        sent = await AsyncKicker(task_name=name, broker=broker, labels={}).kiq()
        result = await sent.wait_result(timeout=20)
        assert not result.is_err, result.error
        return result.return_value

    async def sign_in(self) -> Any:
        credentials = Credentials(email="carla@acme.example", password=PASSWORD, client="c")
        return await self.run(Login, credentials)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    engine = request.getfixturevalue(
        "restoring_postgres_engine" if request.param == "postgres" else "sqlite_engine"
    )
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
async def restoring_postgres_engine(postgres_engine):
    yield postgres_engine
    await restore_audit_partitions(postgres_engine)


async def make_site(database_url: str, clock: FixedClock, **settings: Any) -> Site:
    container = make_container(
        Settings(database_url=database_url, **settings), Overrides(clock, SlowBank())
    )
    return Site(container, clock)


@pytest.fixture
async def site(database_url: str) -> AsyncIterator[Site]:
    site = await make_site(database_url, FixedClock(START, tick=timedelta(milliseconds=1)))
    yield site
    await site.container.close()


async def test_each_maintenance_task_changes_nothing_when_run_again(site: Site):
    agency = await site.run(CreateAgency, NewAgency(slug="acme", name="Acme"))
    admin = Actor.system(agency.id)
    carla = NewUser(
        email="carla@acme.example", full_name="Carla", role=Role.COLLECTOR, password=PASSWORD
    )
    await site.run(CreateUser, admin, carla)
    debtor = await site.run(CreateDebtor, admin, NewDebtor(first_name="A", last_name="B"))
    account = await site.run(
        PlaceAccount,
        admin,
        NewAccount(
            debtor_id=debtor.id,
            external_id="A-1",
            original_creditor="Bank",
            currency="USD",
            placed_balance=10_000,
        ),
    )
    processor = await site.run(
        AddPaymentProcessor, admin, NewPaymentProcessor(name="Sandbox", kind="sandbox")
    )
    pending = await site.run(
        MakePayment,
        admin,
        "slow-1",
        NewPayment(
            account_id=account.id,
            amount=100,
            currency="USD",
            processor_id=processor.id,
            payment_method="pm_card_visa",
        ),
    )
    assert pending.payment.status is PaymentStatus.PENDING
    site.clock.advance(timedelta(minutes=10))  # recovery asks within 23 hours only
    assert await site.run_task(SETTLE_PENDING_PAYMENTS) == 1
    assert await site.run_task(SETTLE_PENDING_PAYMENTS) == 0
    spent = await site.sign_in()
    await site.run(Refresh, spent.refresh_token)
    logged_out = await site.sign_in()
    await site.run(Logout, await site.run(Authenticate, logged_out.access_token))
    site.clock.advance(timedelta(days=15))  # every token above has expired
    live = await site.sign_in()

    assert await site.run_task(PURGE_IDEMPOTENCY_KEYS) == 1
    assert await site.run_task(PURGE_IDEMPOTENCY_KEYS) == 0
    assert await site.run_task(PURGE_SESSIONS) == {"sessions": 2, "refresh_tokens": 3}
    assert await site.run_task(PURGE_SESSIONS) == {"sessions": 0, "refresh_tokens": 0}
    await site.run_task(MAINTAIN_AUDIT_PARTITIONS)
    assert await site.run_task(MAINTAIN_AUDIT_PARTITIONS) == {"created": 0, "detached": []}

    settled = await site.run(GetPayment, admin, pending.payment.id)
    assert settled.status is PaymentStatus.COMPLETED
    assert await site.run(Refresh, live.refresh_token)  # the live session survived
    with pytest.raises(Unauthenticated, match="not valid"):
        await site.run(Refresh, spent.refresh_token)


@pytest.mark.postgres
async def test_partitions_past_the_retention_are_detached_once(restoring_postgres_engine):
    engine = restoring_postgres_engine
    url = engine.url.render_as_string(hide_password=False)
    months = [name for name in await attached_partitions(engine) if name != "audit_log_default"]
    now = datetime.now(UTC)
    first = datetime(now.year, now.month, 1, tzinfo=UTC)
    assert months[0] == f"audit_log_y{first.year:04d}m{first.month:02d}"

    # Off by default: years later, nothing is detached.
    later = FixedClock(first + timedelta(days=365 * 10))
    site = await make_site(url, later)
    try:
        assert await site.run_task(MAINTAIN_AUDIT_PARTITIONS) == {"created": 0, "detached": []}
    finally:
        await site.container.close()

    # 36 months kept: 38 months on, the first two months have gone past it, and only they.
    index = first.year * 12 + first.month - 1 + 38
    ahead = FixedClock(datetime(index // 12, index % 12 + 1, 15, tzinfo=UTC))
    site = await make_site(url, ahead, audit_retention_months=36)
    try:
        assert await site.run_task(MAINTAIN_AUDIT_PARTITIONS) == {
            "created": 0,
            "detached": months[:2],
        }
        attached = await attached_partitions(engine)
        assert await site.run_task(MAINTAIN_AUDIT_PARTITIONS) == {"created": 0, "detached": []}
        assert await attached_partitions(engine) == attached == ["audit_log_default", *months[2:]]
    finally:
        await site.container.close()
