"""The core under test with its in-memory adapters: two agencies, one user of each role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from debtflow_adapters.memory import (
    FastPasswordHasher,
    FixedClock,
    InMemoryStore,
    InMemoryUnitOfWork,
)
from debtflow_core.actor import Actor
from debtflow_core.domain.account import Account
from debtflow_core.domain.debtor import Debtor
from debtflow_core.domain.user import Role
from debtflow_core.use_cases.accounts import AssignCollector, NewAccount, PlaceAccount
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
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

    def use(self, use_case: type):
        """An instance of ``use_case`` wired to this world's adapters."""
        wanted = use_case.__init__.__annotations__
        deps = {"uow": self.uow, "clock": self.clock, "hasher": self.hasher}
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
