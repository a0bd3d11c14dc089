"""Acceptance: every report figure equals an independent recomputation from the raw rows.

The data set of :mod:`tests.support.reports` is seeded through the use cases on each
store; the rows are read back through the repositories and every figure is recomputed here
in plain Python, then compared with what the report use cases answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from debtflow_adapters.memory import InMemoryStore, InMemoryUnitOfWork
from debtflow_adapters.memory.reports import InMemoryReportReader
from debtflow_adapters.persistence import SqlUnitOfWork
from debtflow_adapters.persistence.reports import SqlReportReader
from debtflow_core.actor import Actor
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.domain.payment import PaymentStatus
from debtflow_core.domain.user import Role
from debtflow_core.ports.reports import ReportReader
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.payments import fail_refund
from debtflow_core.use_cases.reports import (
    AGING_BUCKETS,
    AgeBalances,
    MeasureCollectorPerformance,
    MeasureRecovery,
    ReportPeriod,
    SummarizeCollections,
    SummarizeImports,
)
from tests.support.reports import AS_OF, Rows, Seeder, seed

JANUARY = ReportPeriod(from_=date(2026, 1, 1), to=date(2026, 1, 31))
PLACED = ReportPeriod(from_=date(2025, 12, 1), to=date(2026, 1, 31))

Store = tuple[Callable[[], UnitOfWork], ReportReader]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    """Units of work and the report reader over one empty store (the stores of
    ``uow_factory``)."""
    if request.param == "memory":
        memory = InMemoryStore()
        return lambda: InMemoryUnitOfWork(memory), InMemoryReportReader(memory)
    engine: AsyncEngine = request.getfixturevalue(f"{request.param}_engine")
    return lambda: SqlUnitOfWork(engine), SqlReportReader(engine)


@pytest.fixture
async def seeded(store: Store) -> AsyncIterator[tuple[ReportReader, Any, Rows]]:
    uow_factory, reader = store
    seeder = Seeder(uow_factory)
    alpha, _ = await seed(seeder)
    yield reader, alpha, await seeder.rows(alpha.admin.agency_id)


def _within(moment: datetime, period: ReportPeriod) -> bool:
    start = datetime.combine(period.from_, datetime.min.time(), UTC)
    return start <= moment < start + timedelta(days=(period.to - period.from_).days + 1)


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def expected_collections(rows: Rows) -> dict[str, Any]:
    accounts = {a.id: a for a in rows.accounts}
    payments = {p.id: p for p in rows.payments}
    events = [
        ("payment", p, p.amount, p.created_at)
        for p in rows.payments
        if p.status is PaymentStatus.COMPLETED and _within(p.created_at, JANUARY)
    ] + [
        ("refund", payments[r.payment_id], r.amount, r.created_at)
        for r in rows.refunds
        if _within(r.created_at, JANUARY)
    ]
    dimensions: dict[str, Callable[[Any, datetime], Any]] = {
        "totals": lambda p, at: None,
        "by_collector": lambda p, at: accounts[p.account_id].assigned_collector_id,
        "by_processor": lambda p, at: p.processor_id,
        "by_day": lambda p, at: at.date(),
    }
    keys = {"by_collector": "collector_id", "by_processor": "processor_id", "by_day": "day"}
    report: dict[str, Any] = {"from": "2026-01-01", "to": "2026-01-31"}
    for name, key_of in dimensions.items():
        lines: dict[tuple[Any, str], dict[str, Any]] = {}
        for kind, payment, amount, at in events:
            key = (key_of(payment, at), payment.currency)
            line = lines.setdefault(
                key,
                {
                    "currency": payment.currency,
                    "payments": 0,
                    "collected": 0,
                    "refunds": 0,
                    "refunded": 0,
                },
            )
            if kind == "payment":
                line["payments"] += 1
                line["collected"] += amount
            else:
                line["refunds"] += 1
                line["refunded"] += amount
        ordered = []
        for (group, _), line in sorted(lines.items(), key=lambda i: (str(i[0][0]), i[0][1])):
            line["net"] = line["collected"] - line["refunded"]
            if name in keys:
                line[keys[name]] = _plain(group)
            ordered.append(line)
        report[name] = ordered
    return report


def expected_aging(rows: Rows) -> dict[str, Any]:
    names = ["0-90", "91-180", "181-365", "1-2y", "over-2y", "unknown"]

    def bucket(charge_off: date | None) -> str:
        if charge_off is None:
            return "unknown"
        days = max((AS_OF - charge_off).days, 0)
        for name, last in zip(names, (90, 180, 365, 730), strict=False):
            if days <= last:
                return name
        return "over-2y"

    sums: dict[str, dict[str, list[int]]] = defaultdict(lambda: {n: [0, 0] for n in names})
    for account in rows.accounts:
        if account.status in (AccountStatus.ACTIVE, AccountStatus.DISPUTED):
            line = sums[account.currency][bucket(account.charge_off_date)]
            line[0] += 1
            line[1] += account.current_balance
    return {
        "as_of": AS_OF.isoformat(),
        "currencies": [
            {
                "currency": currency,
                "accounts": sum(n for n, _ in sums[currency].values()),
                "balance": sum(b for _, b in sums[currency].values()),
                "buckets": [
                    {"bucket": n, "accounts": sums[currency][n][0], "balance": sums[currency][n][1]}
                    for n in names
                ],
            }
            for currency in sorted(sums)
        ],
    }


def expected_recovery(rows: Rows) -> dict[str, Any]:
    payments = {p.id: p for p in rows.payments}
    collected: dict[Any, int] = defaultdict(int)
    for payment in rows.payments:
        if payment.status is PaymentStatus.COMPLETED:
            collected[payment.account_id] += payment.amount
    for refund in rows.refunds:
        collected[payments[refund.payment_id].account_id] -= refund.amount
    placed = [a for a in rows.accounts if _within(a.placed_at, PLACED)]
    report: dict[str, Any] = {"from": "2025-12-01", "to": "2026-01-31"}
    for name, fields in [
        ("by_creditor_and_month", ("original_creditor", "month")),
        ("by_creditor", ("original_creditor",)),
        ("by_month", ("month",)),
    ]:
        sums: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for account in placed:
            values = {
                "original_creditor": account.original_creditor,
                "month": f"{account.placed_at.year:04}-{account.placed_at.month:02}",
            }
            line = sums[(*(values[f] for f in fields), account.currency)]
            line[0] += 1
            line[1] += account.placed_balance
            line[2] += collected[account.id]
        report[name] = [
            {
                **dict(zip(fields, key[:-1], strict=True)),
                "currency": key[-1],
                "accounts": accounts,
                "placed": amount,
                "collected": recovered,
                "recovery_rate_bps": recovered * 10_000 // amount if amount else None,
            }
            for key, (accounts, amount, recovered) in sorted(sums.items())
        ]
    return report


def expected_performance(rows: Rows) -> dict[str, Any]:
    accounts = {a.id: a for a in rows.accounts}
    collectors = {u.id for u in rows.users if u.role is Role.COLLECTOR} | {
        a.assigned_collector_id for a in rows.accounts if a.assigned_collector_id
    }
    lines = []
    for collector in sorted(collectors, key=str):
        activities = dict.fromkeys((t.value for t in ActivityType), 0)
        promises: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for activity in rows.activities:
            if activity.actor_id == collector and _within(activity.occurred_at, JANUARY):
                activities[activity.type.value] += 1
                if activity.promise is not None:
                    line = promises[accounts[activity.account_id].currency]
                    line[0] += 1
                    line[1] += activity.promise.amount
        payments: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for payment in rows.payments:
            if (
                payment.status is PaymentStatus.COMPLETED
                and _within(payment.created_at, JANUARY)
                and accounts[payment.account_id].assigned_collector_id == collector
            ):
                payments[payment.currency][0] += 1
                payments[payment.currency][1] += payment.amount
        lines.append(
            {
                "collector_id": str(collector),
                "accounts_assigned": sum(
                    1 for a in rows.accounts if a.assigned_collector_id == collector
                ),
                "activities": activities,
                "promises_to_pay": [
                    {"currency": c, "count": n, "amount": a}
                    for c, (n, a) in sorted(promises.items())
                ],
                "payments": [
                    {"currency": c, "count": n, "amount": a}
                    for c, (n, a) in sorted(payments.items())
                ],
            }
        )
    return {"from": "2026-01-01", "to": "2026-01-31", "collectors": lines}


def expected_imports(rows: Rows) -> dict[str, Any]:
    def figures(runs: list[Any]) -> dict[str, Any]:
        read = sum(r.rows_read for r in runs)
        failed = sum(r.rows_failed for r in runs)
        return {
            "runs": len(runs),
            "runs_by_status": {
                s.value: sum(1 for r in runs if r.status is s) for s in ImportStatus
            },
            "rows_read": read,
            "rows_created": sum(r.rows_created for r in runs),
            "rows_updated": sum(r.rows_updated for r in runs),
            "rows_failed": failed,
            "error_rate_bps": failed * 10_000 // read if read else None,
        }

    runs = [r for r in rows.import_runs if _within(r.created_at, JANUARY)]
    sources = sorted({r.file_source_id for r in runs}, key=str)
    return {
        "from": "2026-01-01",
        "to": "2026-01-31",
        "totals": figures(runs),
        "by_source": [
            {
                "file_source_id": _plain(source),
                **figures([r for r in runs if r.file_source_id == source]),
            }
            for source in sources
        ],
    }


async def test_collections_summary_matches_the_raw_rows(seeded):
    reader, alpha, rows = seeded
    report = await SummarizeCollections(reader).execute(alpha.actors["readonly"], JANUARY)
    assert _plain(report) == expected_collections(rows)
    # The data set exercises what it should: refunds, several currencies and processors.
    assert {line.currency for line in report.totals} == {"USD", "EUR", "GBP"}
    assert any(line.net < line.collected for line in report.totals)
    assert len(report.by_processor) > len(report.totals)


async def test_aging_matches_the_raw_rows(seeded):
    reader, alpha, rows = seeded

    class AsOf:
        @staticmethod
        def now() -> datetime:
            return datetime.combine(AS_OF, datetime.min.time(), UTC) + timedelta(hours=20)

    report = await AgeBalances(reader, AsOf()).execute(alpha.admin)
    assert _plain(report) == expected_aging(rows)
    filled = {b.bucket for c in report.currencies for b in c.buckets if b.accounts}
    assert filled == set(AGING_BUCKETS)  # every bucket has accounts, edges included


async def test_recovery_matches_the_raw_rows(seeded):
    reader, alpha, rows = seeded
    report = await MeasureRecovery(reader).execute(alpha.admin, PLACED)
    assert _plain(report) == expected_recovery(rows)
    assert {line.month for line in report.by_month} == {"2025-12", "2026-01"}


async def test_collector_performance_matches_the_raw_rows(seeded):
    reader, alpha, rows = seeded
    report = await MeasureCollectorPerformance(reader).execute(alpha.admin, JANUARY)
    assert _plain(report) == expected_performance(rows)
    ids = {line.collector_id for line in report.collectors}
    assert alpha.actors["idle"].user_id in ids
    assert alpha.admin.user_id not in ids


async def test_imports_summary_matches_the_raw_rows(seeded):
    reader, alpha, rows = seeded
    report = await SummarizeImports(reader).execute(alpha.actors["readonly"], JANUARY)
    assert _plain(report) == expected_imports(rows)
    assert len(report.by_source) == 3  # two file sources, and files imported by hand
    assert report.totals.runs_by_status[ImportStatus.RUNNING] == 1
    assert 0 < report.totals.error_rate_bps < 10_000


async def test_a_refund_counts_on_the_day_it_completed_and_not_while_pending(store):
    uow_factory, reader = store
    seeder = Seeder(uow_factory)
    seeder.at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    alpha = await seeder.tenant("alpha", ("c1",))
    await seeder.account(alpha, "A", balance=100_000, collector="c1")
    paid = await seeder.pay(alpha, "A", 30_000)
    seeder.at(datetime(2026, 3, 31, 23, 58, tzinfo=UTC))
    await seeder.refund(alpha, paid, 10_000, answered=False)
    march = ReportPeriod(from_=date(2026, 3, 1), to=date(2026, 3, 31))
    april = ReportPeriod(from_=date(2026, 4, 1), to=date(2026, 4, 30))

    async def refunded(period: ReportPeriod) -> int:
        summary = await SummarizeCollections(reader).execute(alpha.admin, period)
        return sum(total.refunded for total in summary.totals)

    assert (await refunded(march), await refunded(april)) == (0, 0)  # pending: nothing yet
    seeder.at(datetime(2026, 4, 1, 0, 10, tzinfo=UTC))
    assert await seeder.settle_refunds() == 1
    assert (await refunded(march), await refunded(april)) == (0, 10_000)

    async def recovered() -> int:
        report = await MeasureRecovery(reader).execute(alpha.admin, march)
        return sum(line.collected for line in report.by_creditor)

    assert await recovered() == 20_000
    failed_at = datetime(2026, 4, 9, 12, 0, tzinfo=UTC)  # the gateway reports it failed
    async with uow_factory() as uow:
        payment = await uow.payments.lock(paid.id)
        [made] = await uow.payments.refunds(paid.id)
        actor = Actor.system(alpha.admin.agency_id)
        await fail_refund(uow, actor, payment, made, failed_at, failed_at)
        await uow.commit()
    assert (await refunded(march), await refunded(april)) == (0, 0)  # nothing was given back
    assert await recovered() == 30_000
