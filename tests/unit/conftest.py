"""The core under test with its in-memory adapters: two agencies, one user of each role."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from debtflow_adapters.memory import (
    FastPasswordHasher,
    FixedClock,
    InMemoryStore,
    InMemoryUnitOfWork,
)
from debtflow_adapters.memory.idempotency_cache import InMemoryIdempotencyCache
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_adapters.sandbox.gateway import SandboxGateway
from debtflow_core.actor import Actor
from debtflow_core.domain.account import Account
from debtflow_core.domain.debtor import Debtor
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.domain.user import Role
from debtflow_core.errors import GatewayUnavailable
from debtflow_core.ports.payment_gateway import ChargeRequest, ChargeResult
from debtflow_core.use_cases.accounts import (
    AssignCollector,
    GetAccount,
    NewAccount,
    PlaceAccount,
)
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.file_sources import FileSourcePolicy
from debtflow_core.use_cases.payments import MakePayment, NewPayment, SettlePendingPayments
from debtflow_core.use_cases.users import CreateUser, NewUser

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class Agency:
    admin: Actor
    collector: Actor
    colleague: Actor  # a second collector
    readonly: Actor


class World:
    """Builds use cases over one shared store, and seeds agencies, debtors and accounts."""

    def __init__(self) -> None:
        self.store = InMemoryStore()
        self.uow = InMemoryUnitOfWork(self.store)
        self.clock = FixedClock(START, tick=timedelta(seconds=1))
        self.hasher = FastPasswordHasher()
        self.telemetry = InMemoryTelemetry()
        # Local sources on, as on an installation with a sources root; a test of the
        # other case replaces it.
        self.source_policy = FileSourcePolicy(local_sources=True)

    def use(self, use_case: type):
        """An instance of ``use_case`` wired to this world's adapters."""
        wanted = use_case.__init__.__annotations__
        deps = {
            "uow": self.uow,
            "clock": self.clock,
            "hasher": self.hasher,
            "telemetry": self.telemetry,
            "source_policy": self.source_policy,
        }
        return use_case(**{name: dep for name, dep in deps.items() if name in wanted})

    async def agency(self, slug: str) -> Agency:
        agency = await self.use(CreateAgency).execute(NewAgency(slug=slug, name=slug.title()))
        system = Actor.system(agency.id)
        actors = {}
        for name, role in [
            ("admin", Role.AGENCY_ADMIN),
            ("collector", Role.COLLECTOR),
            ("colleague", Role.COLLECTOR),
            ("readonly", Role.READONLY),
        ]:
            user = await self.use(CreateUser).execute(
                system,
                NewUser(
                    email=f"{name}@{slug}.example",
                    full_name=name.title(),
                    role=role,
                    password="correct horse battery",
                ),
            )
            actors[name] = Actor(user_id=user.id, agency_id=agency.id, role=role)
        return Agency(**actors)

    async def debtor(self, admin: Actor, first: str = "Ada", last: str = "Lovelace") -> Debtor:
        return await self.use(CreateDebtor).execute(
            admin, NewDebtor(first_name=first, last_name=last)
        )

    async def account(
        self,
        admin: Actor,
        *,
        external_id: str,
        balance: int = 10_000,
        collector: Actor | None = None,
        debtor: Debtor | None = None,
    ) -> Account:
        debtor = debtor or await self.debtor(admin)
        account = await self.use(PlaceAccount).execute(
            admin,
            NewAccount(
                debtor_id=debtor.id,
                external_id=external_id,
                original_creditor="First Bank",
                currency="USD",
                placed_balance=balance,
            ),
        )
        if collector is not None:
            account = await self.use(AssignCollector).execute(admin, account.id, collector.user_id)
        return account


@pytest.fixture
def world() -> World:
    return World()


class CountingGateway(SandboxGateway):
    """The sandbox, counting the charges it really makes (one per idempotency key)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0
        self.charged: Counter[str] = Counter()
        self.down_until_sent = False  # True: fail with request_sent=False (breaker open)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.calls += 1
        if self.down_until_sent:
            raise GatewayUnavailable("circuit open", retry_after_seconds=30, request_sent=False)
        result = await super().charge(request)
        self.charged[request.idempotency_key] += 1
        return result


@pytest.fixture
async def shop(world):
    alpha = await world.agency("alpha")
    processor = PaymentProcessor(
        id=uuid.uuid4(),
        agency_id=alpha.admin.agency_id,
        name="Sandbox",
        kind=ProcessorKind.SANDBOX,
        active=True,
        created_at=START,
    )
    async with world.uow as uow:
        await uow.payment_processors.add(processor)
        await uow.commit()
    account = await world.account(
        alpha.admin, external_id="A-1", balance=10_000, collector=alpha.collector
    )
    gateway = CountingGateway()
    cache = InMemoryIdempotencyCache(world.clock)

    class Shop:
        pay = MakePayment(world.uow, world.clock, cache, gateway, world.telemetry)
        settle = SettlePendingPayments(world.uow, world.clock, cache, gateway, world.telemetry)

        @staticmethod
        def payment(amount=2_500, method="pm_card_visa", **kw) -> NewPayment:
            fields = dict(
                account_id=account.id,
                amount=amount,
                currency="USD",
                processor_id=processor.id,
                payment_method=method,
            )
            return NewPayment(**{**fields, **kw})

        @staticmethod
        async def balance() -> int:
            return (await world.use(GetAccount).execute(alpha.admin, account.id)).current_balance

    Shop.world, Shop.alpha, Shop.account, Shop.gateway, Shop.cache = (
        world,
        alpha,
        account,
        gateway,
        cache,
    )
    return Shop
