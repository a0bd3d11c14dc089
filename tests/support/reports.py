"""A varied data set for the reports, seeded through the core's use cases, and the raw rows
read back through the repositories.

Two agencies: ``alpha`` is the one reported on; ``beta`` has the same kinds of data, which
must never show in alpha's reports. Alpha has accounts in three currencies and two
creditors, placed in December 2025, January and February 2026; charge-off dates on every
aging edge, in the future and missing; open, closed and recalled accounts; payments that
complete, decline and stay pending on two processors, on the edges of January; refunds
(full and partial, one in January on a December payment); activities and promises by two
collectors and the admin; a collector with nothing at all; import runs from two file
sources and by hand, in every final status, one still running, some outside January.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from debtflow_adapters.memory import FastPasswordHasher, FixedClock
from debtflow_adapters.memory.idempotency_cache import InMemoryIdempotencyCache
from debtflow_adapters.memory.telemetry import InMemoryTelemetry
from debtflow_adapters.sandbox.gateway import PROCESSING, SandboxGateway
from debtflow_core.actor import Actor
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.activity import Activity, ActivityType, PromiseToPay
from debtflow_core.domain.imports import ImportRun, ImportStatus
from debtflow_core.domain.payment import Payment, Refund
from debtflow_core.domain.payment_processor import PaymentProcessor, ProcessorKind
from debtflow_core.domain.user import Role, User
from debtflow_core.ports.accounts import AccountQuery
from debtflow_core.ports.activities import ActivityQuery
from debtflow_core.ports.import_runs import RunPosition
from debtflow_core.ports.payments import PaymentQuery
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.ports.users import UserQuery
from debtflow_core.use_cases.accounts import (
    AssignCollector,
    ChangeAccountStatus,
    NewAccount,
    PlaceAccount,
)
from debtflow_core.use_cases.activities import NewActivity, RecordActivity
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.debtors import CreateDebtor, NewDebtor
from debtflow_core.use_cases.payments import (
    MakePayment,
    NewPayment,
    NewRefund,
    RefundPayment,
    SettlePendingRefunds,
)
from debtflow_core.use_cases.users import CreateUser, NewUser

START = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)
AS_OF = date(2026, 2, 15)
DECLINED = "pm_card_chargeDeclined"


@dataclass
class Rows:
    """One agency's raw rows, as the repositories return them."""

    users: list[User]
    accounts: list[Account]
    payments: list[Payment]
    refunds: list[Refund]
    activities: list[Activity]
    import_runs: list[ImportRun]


@dataclass
class Tenant:
    admin: Actor
    actors: dict[str, Actor] = field(default_factory=dict)
    processors: list[UUID] = field(default_factory=list)
    accounts: dict[str, Account] = field(default_factory=dict)


class Seeder:
    """Runs the use cases over one store or database, on a clock the seed moves forward;
    import runs go straight to their repository, with the counts an import would leave."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self._uow_factory = uow_factory
        self._now = START
        self.clock = FixedClock(START)
        self._cache = InMemoryIdempotencyCache(self.clock)
        self._gateway = SandboxGateway()
        self._keys = iter(range(1_000_000))

    def at(self, moment: datetime) -> None:
        self.clock.advance(moment - self._now)
        self._now = moment

    def _use(self, use_case: type) -> Any:
        wanted = use_case.__init__.__annotations__
        deps = {
            "uow": self._uow_factory(),
            "clock": self.clock,
            "hasher": FastPasswordHasher(),
            "cache": self._cache,
            "gateway": self._gateway,
            "telemetry": InMemoryTelemetry(),
        }
        return use_case(**{name: dep for name, dep in deps.items() if name in wanted})

    async def tenant(self, slug: str, collectors: tuple[str, ...]) -> Tenant:
        agency = await self._use(CreateAgency).execute(NewAgency(slug=slug, name=slug.title()))
        admin = Actor.system(agency.id)
        tenant = Tenant(admin=admin)
        for name, role in [("admin", Role.AGENCY_ADMIN), ("readonly", Role.READONLY)] + [
            (c, Role.COLLECTOR) for c in collectors
        ]:
            user = await self._use(CreateUser).execute(
                admin,
                NewUser(
                    email=f"{name}@{slug}.example",
                    full_name=name,
                    role=role,
                    password="correct horse battery",
                ),
            )
            tenant.actors[name] = Actor(user_id=user.id, agency_id=agency.id, role=role)
        tenant.admin = tenant.actors["admin"]
        uow = self._uow_factory()
        async with uow:
            for name in ("Sandbox One", "Sandbox Two"):
                processor = PaymentProcessor(
                    id=uuid.uuid4(),
                    agency_id=agency.id,
                    name=name,
                    kind=ProcessorKind.SANDBOX,
                    active=True,
                    created_at=self._now,
                )
                await uow.payment_processors.add(processor)
                tenant.processors.append(processor.id)
            await uow.commit()
        return tenant

    async def account(
        self,
        tenant: Tenant,
        name: str,
        *,
        balance: int,
        currency: str = "USD",
        creditor: str = "First Bank",
        charge_off: date | None = None,
        collector: str | None = None,
    ) -> Account:
        debtor = await self._use(CreateDebtor).execute(
            tenant.admin, NewDebtor(first_name="Debtor", last_name=name)
        )
        account = await self._use(PlaceAccount).execute(
            tenant.admin,
            NewAccount(
                debtor_id=debtor.id,
                external_id=name,
                original_creditor=creditor,
                currency=currency,
                placed_balance=balance,
                charge_off_date=charge_off,
            ),
        )
        if collector is not None:
            account = await self._use(AssignCollector).execute(
                tenant.admin, account.id, tenant.actors[collector].user_id
            )
        tenant.accounts[name] = account
        return account

    async def pay(
        self,
        tenant: Tenant,
        account: str,
        amount: int,
        *,
        processor: int = 0,
        method: str = "pm_card_visa",
    ) -> Payment:
        target = tenant.accounts[account]
        result = await self._use(MakePayment).execute(
            tenant.admin,
            f"key-{next(self._keys)}",
            NewPayment(
                account_id=target.id,
                amount=amount,
                currency=target.currency,
                processor_id=tenant.processors[processor],
                payment_method=method,
            ),
        )
        return result.payment

    async def refund(
        self, tenant: Tenant, payment: Payment, amount: int | None = None, *, answered: bool = True
    ) -> None:
        """Refund ``payment``; not ``answered``, the gateway gives no answer and the refund
        stays pending until :meth:`settle_refunds`."""
        self._gateway.failing = not answered
        try:
            await self._use(RefundPayment).execute(
                tenant.admin, f"key-{next(self._keys)}", payment.id, NewRefund(amount=amount)
            )
        finally:
            self._gateway.failing = False

    async def settle_refunds(self) -> int:
        return await self._use(SettlePendingRefunds).execute()

    async def activity(
        self, tenant: Tenant, who: str, account: str, type_: ActivityType, promise: int = 0
    ) -> None:
        await self._use(RecordActivity).execute(
            tenant.actors[who],
            tenant.accounts[account].id,
            NewActivity(
                type=type_,
                promise=PromiseToPay(amount=promise, due_on=date(2026, 3, 1)) if promise else None,
            ),
        )

    async def status(self, tenant: Tenant, account: str, status: AccountStatus) -> None:
        await self._use(ChangeAccountStatus).execute(
            tenant.admin, tenant.accounts[account].id, status
        )

    async def import_run(
        self,
        tenant: Tenant,
        source: UUID | None,
        status: ImportStatus,
        *,
        created: int = 0,
        updated: int = 0,
        failed: int = 0,
    ) -> None:
        number = next(self._keys)
        run = ImportRun(
            id=uuid.uuid4(),
            agency_id=tenant.admin.agency_id,
            file_source_id=source,
            file_name=f"placements-{number}.csv",
            sha256=f"{number:064x}",
            storage_key=None,
            status=status,
            rows_read=created + updated + failed,
            rows_created=created,
            rows_updated=updated,
            rows_failed=failed,
            created_at=self._now,
            started_at=self._now,
            finished_at=None if status is ImportStatus.RUNNING else self._now,
        )
        async with self._uow_factory() as uow:
            await uow.import_runs.add_or_get(run)
            await uow.commit()

    async def rows(self, agency_id: UUID) -> Rows:
        uow = self._uow_factory()
        async with uow:
            users = await uow.users.list(UserQuery(agency_id=agency_id, limit=10_000))
            accounts = await uow.accounts.list(AccountQuery(agency_id=agency_id, limit=10_000))
            payments = await uow.payments.list(PaymentQuery(agency_id=agency_id, limit=10_000))
            refunds = [r for p in payments for r in await uow.payments.refunds(p.id)]
            activities = [
                a
                for account in accounts
                for a in await uow.activities.list(
                    ActivityQuery(account_id=account.id, limit=10_000)
                )
            ]
            runs: list[ImportRun] = []
            after = None
            while page := await uow.import_runs.list(agency_id, after=after, limit=100):
                runs += page
                after = RunPosition(page[-1].created_at, page[-1].id)
        return Rows(users, accounts, payments, refunds, activities, runs)


def _ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


async def seed(seeder: Seeder) -> tuple[Tenant, Tenant]:
    """Alpha and beta, as the module docstring describes; returns them."""
    alpha = await seeder.tenant("alpha", ("c1", "c2", "idle"))
    beta = await seeder.tenant("beta", ("c1",))

    seeder.at(datetime(2025, 12, 10, 9, 0, tzinfo=UTC))
    await seeder.account(alpha, "D-USD-1", balance=100_000, charge_off=_ago(0), collector="c1")
    await seeder.account(alpha, "D-USD-2", balance=50_000, charge_off=_ago(90), collector="c2")
    await seeder.account(
        alpha, "D-EUR-1", balance=70_000, currency="EUR", charge_off=_ago(91), collector="c1"
    )
    await seeder.account(
        alpha, "D-GBP-1", balance=9_999, currency="GBP", creditor="Second Bank", charge_off=None
    )
    await seeder.account(
        alpha, "D-USD-3", balance=30_000, creditor="Second Bank", charge_off=_ago(180)
    )
    await seeder.account(beta, "B-USD-1", balance=500_000, charge_off=_ago(10), collector="c1")
    await seeder.account(beta, "B-EUR-1", balance=400_000, currency="EUR")

    seeder.at(datetime(2025, 12, 20, 12, 0, tzinfo=UTC))
    december = await seeder.pay(alpha, "D-USD-1", 10_000)
    await seeder.pay(alpha, "D-EUR-1", 5_000, processor=1)
    await seeder.activity(alpha, "c1", "D-USD-1", ActivityType.CALL)
    beta_december = await seeder.pay(beta, "B-USD-1", 20_000)

    source, other_source = uuid.uuid4(), uuid.uuid4()
    await seeder.import_run(alpha, source, ImportStatus.SUCCEEDED, created=40)
    await seeder.import_run(beta, source, ImportStatus.SUCCEEDED, created=900)

    seeder.at(datetime(2026, 1, 1, 0, 0, tzinfo=UTC))  # the first instant of the period
    await seeder.import_run(alpha, source, ImportStatus.SUCCEEDED, created=100, updated=20)
    await seeder.import_run(
        alpha, source, ImportStatus.PARTIALLY_FAILED, created=50, updated=3, failed=7
    )
    await seeder.import_run(alpha, other_source, ImportStatus.SUCCEEDED, created=10)
    await seeder.import_run(alpha, None, ImportStatus.FAILED)
    await seeder.import_run(beta, None, ImportStatus.PARTIALLY_FAILED, created=5, failed=5)
    await seeder.pay(alpha, "D-USD-2", 1_000)
    await seeder.account(alpha, "J-USD-1", balance=80_000, charge_off=_ago(181), collector="c2")
    await seeder.account(
        alpha, "J-EUR-1", balance=60_000, currency="EUR", charge_off=_ago(365), collector="c2"
    )
    await seeder.account(alpha, "J-USD-2", balance=40_000, charge_off=_ago(366), collector="c1")
    await seeder.account(
        alpha,
        "J-GBP-1",
        balance=25_000,
        currency="GBP",
        creditor="Second Bank",
        charge_off=_ago(730),
    )
    await seeder.account(alpha, "J-USD-3", balance=15_000, charge_off=_ago(731))
    await seeder.account(alpha, "J-USD-4", balance=12_345, charge_off=AS_OF + timedelta(days=10))
    await seeder.account(alpha, "J-USD-CLOSED", balance=5_000, charge_off=_ago(5))
    await seeder.account(alpha, "J-USD-RECALLED", balance=6_000, charge_off=None, collector="c1")

    seeder.at(datetime(2026, 1, 5, 15, 30, tzinfo=UTC))
    await seeder.refund(alpha, december, 4_000)  # a January refund of a December payment
    await seeder.refund(beta, beta_december)
    usd = await seeder.pay(alpha, "J-USD-1", 20_000)
    await seeder.pay(alpha, "J-USD-1", 7_000, processor=1)
    await seeder.pay(alpha, "J-USD-2", 3_000, method=DECLINED)
    await seeder.pay(alpha, "D-GBP-1", 999, processor=1)
    await seeder.pay(alpha, "J-EUR-1", 2_500, method=PROCESSING)
    await seeder.pay(beta, "B-EUR-1", 30_000)
    await seeder.activity(alpha, "c2", "J-USD-1", ActivityType.CALL)
    await seeder.activity(alpha, "c2", "J-USD-1", ActivityType.PROMISE_TO_PAY, promise=15_000)
    await seeder.activity(alpha, "c2", "J-EUR-1", ActivityType.PROMISE_TO_PAY, promise=8_000)
    await seeder.activity(alpha, "c1", "J-USD-2", ActivityType.EMAIL)
    await seeder.activity(alpha, "admin", "J-GBP-1", ActivityType.NOTE)

    seeder.at(datetime(2026, 1, 18, 23, 0, tzinfo=UTC))
    eur = await seeder.pay(alpha, "J-EUR-1", 12_000, processor=1)
    await seeder.refund(alpha, usd)  # in full
    await seeder.refund(alpha, eur, 2_000)
    await seeder.pay(alpha, "J-GBP-1", 25_000)  # pays it in full
    await seeder.activity(alpha, "c1", "J-USD-2", ActivityType.PROMISE_TO_PAY, promise=40_000)
    await seeder.activity(alpha, "c1", "D-EUR-1", ActivityType.SMS)
    await seeder.status(alpha, "J-USD-CLOSED", AccountStatus.CLOSED)
    await seeder.status(alpha, "J-USD-RECALLED", AccountStatus.RECALLED)

    seeder.at(datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))  # the last second of the period
    await seeder.import_run(alpha, None, ImportStatus.RUNNING, created=8, failed=1)
    await seeder.pay(alpha, "J-USD-2", 4_000, processor=1)
    await seeder.activity(alpha, "c1", "J-USD-2", ActivityType.CALL)

    seeder.at(datetime(2026, 2, 1, 0, 0, tzinfo=UTC))  # the first second after it
    february = await seeder.pay(alpha, "D-USD-2", 2_000)
    await seeder.import_run(alpha, other_source, ImportStatus.FAILED, failed=3)
    await seeder.account(alpha, "F-USD-1", balance=11_000, charge_off=_ago(1_000))
    await seeder.activity(alpha, "c2", "J-USD-1", ActivityType.PROMISE_TO_PAY, promise=1_000)
    await seeder.refund(alpha, february, 500)
    await seeder.pay(alpha, "F-USD-1", 1_000)
    return alpha, beta
