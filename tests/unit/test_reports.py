"""The report use cases over the in-memory reader: who may read, which parameters pass,
and the rules at the edges (bucket boundaries, refunds across periods, rates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from debtflow_adapters.memory import InMemoryStore, InMemoryUnitOfWork
from debtflow_adapters.memory.reports import InMemoryReportReader
from debtflow_core.domain.account import AccountStatus
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.errors import PermissionDenied, ValidationFailed
from debtflow_core.use_cases.reports import (
    AGING_BUCKETS,
    AgeBalances,
    MeasureCollectorPerformance,
    MeasureRecovery,
    ReportPeriod,
    SummarizeCollections,
    SummarizeImports,
)
from tests.support.reports import DECLINED, Seeder

MARCH = ReportPeriod(from_=date(2026, 3, 1), to=date(2026, 3, 31))
AS_OF = date(2026, 3, 15)


class Books:
    def __init__(self) -> None:
        store = InMemoryStore()
        self.seeder = Seeder(lambda: InMemoryUnitOfWork(store))
        self.reader = InMemoryReportReader(store)

    def at(self, *moment: int) -> None:
        self.seeder.at(datetime(*moment, tzinfo=UTC))

    def period_use_cases(self) -> list:
        return [
            SummarizeCollections(self.reader),
            MeasureRecovery(self.reader),
            MeasureCollectorPerformance(self.reader),
            SummarizeImports(self.reader),
        ]


@pytest.fixture
async def books() -> Books:
    books = Books()
    books.at(2026, 2, 1, 9, 0)
    return books


async def test_agency_admins_and_readonly_users_read_reports_collectors_may_not(books):
    alpha = await books.seeder.tenant("alpha", ("c1",))
    aging = AgeBalances(books.reader, books.seeder.clock)
    for name in ("admin", "readonly"):
        actor = alpha.actors[name]
        for use_case in books.period_use_cases():
            await use_case.execute(actor, MARCH)
        await aging.execute(actor)
    for use_case in books.period_use_cases():
        with pytest.raises(PermissionDenied):
            await use_case.execute(alpha.actors["c1"], MARCH)
    with pytest.raises(PermissionDenied):
        await aging.execute(alpha.actors["c1"])


@pytest.mark.parametrize(
    ("from_", "to", "field"),
    [
        (date(2026, 3, 2), date(2026, 3, 1), "to"),
        (date(2025, 3, 1), date(2026, 3, 2), "to"),  # 367 days, both ends included
        (date(1899, 12, 31), date(1900, 1, 1), "from"),
        (date(9999, 12, 30), date(9999, 12, 31), "to"),
    ],
)
async def test_a_period_out_of_order_too_long_or_out_of_range_names_its_field(
    books, from_, to, field
):
    alpha = await books.seeder.tenant("alpha", ())
    for use_case in books.period_use_cases():
        with pytest.raises(ValidationFailed) as error:
            await use_case.execute(alpha.admin, ReportPeriod(from_=from_, to=to))
        assert error.value.field == field


async def test_a_period_of_366_days_and_one_of_a_single_day_are_fine(books):
    alpha = await books.seeder.tenant("alpha", ())
    for period in [
        ReportPeriod(from_=date(2025, 3, 2), to=date(2026, 3, 2)),
        ReportPeriod(from_=date(1900, 1, 1), to=date(1900, 1, 1)),
        ReportPeriod(from_=date(9999, 12, 30), to=date(9999, 12, 30)),
    ]:
        summary = await SummarizeCollections(books.reader).execute(alpha.admin, period)
        assert summary.totals == []


async def test_aging_as_of_a_day_out_of_range_names_as_of(books):
    alpha = await books.seeder.tenant("alpha", ())
    with pytest.raises(ValidationFailed) as error:
        await AgeBalances(books.reader, books.seeder.clock).execute(alpha.admin, date(1, 1, 1))
    assert error.value.field == "as_of"


async def test_aging_buckets_split_on_their_edges_and_skip_closed_accounts(books):
    alpha = await books.seeder.tenant("alpha", ())
    ages = [0, 90, 91, 180, 181, 365, 366, 730, 731, 5_000]
    for days in ages:
        await books.seeder.account(
            alpha, f"A-{days}", balance=days + 1, charge_off=AS_OF - timedelta(days=days)
        )
    await books.seeder.account(alpha, "FUTURE", balance=7, charge_off=AS_OF + timedelta(days=3))
    await books.seeder.account(alpha, "NONE", balance=11, charge_off=None)
    await books.seeder.account(alpha, "EUR", balance=13, currency="EUR", charge_off=AS_OF)
    await books.seeder.account(alpha, "PAID", balance=0, charge_off=AS_OF)
    await books.seeder.status(alpha, "PAID", AccountStatus.PAID_IN_FULL)

    report = await AgeBalances(books.reader, books.seeder.clock).execute(alpha.admin, AS_OF)

    assert report.as_of == AS_OF
    eur, usd = report.currencies
    assert (eur.currency, eur.accounts, eur.balance) == ("EUR", 1, 13)
    assert [b.bucket for b in usd.buckets] == list(AGING_BUCKETS)
    assert {b.bucket: (b.accounts, b.balance) for b in usd.buckets} == {
        "0-90": (3, 1 + 91 + 7),  # 0 and 90 days, and a charge-off still to come
        "91-180": (2, 92 + 181),
        "181-365": (2, 182 + 366),
        "1-2y": (2, 367 + 731),
        "over-2y": (2, 732 + 5_001),
        "unknown": (1, 11),
    }
    assert usd.accounts == 12


async def test_aging_defaults_to_today_in_utc(books):
    alpha = await books.seeder.tenant("alpha", ())
    books.at(2026, 3, 15, 23, 59)
    report = await AgeBalances(books.reader, books.seeder.clock).execute(alpha.admin)
    assert report.as_of == date(2026, 3, 15)
    assert report.currencies == []


async def test_collections_count_refunds_when_made_and_only_completed_payments(books):
    alpha = await books.seeder.tenant("alpha", ("c1",))
    await books.seeder.account(alpha, "A", balance=100_000, collector="c1")
    books.at(2026, 2, 28, 23, 59)
    february = await books.seeder.pay(alpha, "A", 30_000)
    books.at(2026, 3, 3, 10, 0)
    await books.seeder.refund(alpha, february, 10_000)
    await books.seeder.pay(alpha, "A", 5_000, processor=1)
    await books.seeder.pay(alpha, "A", 5_000, method=DECLINED)
    await books.seeder.pay(alpha, "A", 5_000, method="pm_card_processing")

    summary = await SummarizeCollections(books.reader).execute(alpha.admin, MARCH)

    (total,) = summary.totals
    assert (total.payments, total.collected, total.refunds, total.refunded, total.net) == (
        1,
        5_000,
        1,
        10_000,
        -5_000,
    )
    (collector,) = summary.by_collector
    assert collector.collector_id == alpha.actors["c1"].user_id
    assert [(p.processor_id, p.collected, p.refunded) for p in summary.by_processor] == sorted(
        [(alpha.processors[0], 0, 10_000), (alpha.processors[1], 5_000, 0)],
        key=lambda line: str(line[0]),
    )
    assert [d.day for d in summary.by_day] == [date(2026, 3, 3)]


async def test_recovery_rate_is_whole_basis_points_rounded_down_and_null_for_nothing_placed(
    books,
):
    alpha = await books.seeder.tenant("alpha", ())
    books.at(2026, 3, 1, 0, 0)
    await books.seeder.account(alpha, "A", balance=30_000)
    await books.seeder.account(alpha, "ZERO", balance=0, creditor="Empty Bank")
    await books.seeder.pay(alpha, "A", 10_000)

    report = await MeasureRecovery(books.reader).execute(alpha.admin, MARCH)

    rates = {line.original_creditor: line.recovery_rate_bps for line in report.by_creditor}
    assert rates == {"First Bank": 3_333, "Empty Bank": None}
    assert [line.month for line in report.by_creditor_and_month] == ["2026-03", "2026-03"]


async def test_imports_error_rate_is_null_when_no_row_was_read(books):
    alpha = await books.seeder.tenant("alpha", ())
    books.at(2026, 3, 2, 9, 0)
    await books.seeder.import_run(alpha, None, ImportStatus.FAILED)
    await books.seeder.import_run(alpha, None, ImportStatus.QUEUED)

    report = await SummarizeImports(books.reader).execute(alpha.admin, MARCH)

    assert (report.totals.runs, report.totals.rows_read, report.totals.error_rate_bps) == (
        2,
        0,
        None,
    )
    assert report.totals.runs_by_status == {
        ImportStatus.QUEUED: 1,
        ImportStatus.RUNNING: 0,
        ImportStatus.SUCCEEDED: 0,
        ImportStatus.PARTIALLY_FAILED: 0,
        ImportStatus.FAILED: 1,
    }
    assert [line.file_source_id for line in report.by_source] == [None]


async def test_another_agencys_figures_never_show(books):
    alpha = await books.seeder.tenant("alpha", ("c1",))
    beta = await books.seeder.tenant("beta", ("c1",))
    books.at(2026, 3, 2, 9, 0)
    await books.seeder.account(beta, "B", balance=50_000, collector="c1")
    await books.seeder.pay(beta, "B", 1_000)

    collections = await SummarizeCollections(books.reader).execute(alpha.admin, MARCH)
    recovery = await MeasureRecovery(books.reader).execute(alpha.admin, MARCH)
    performance = await MeasureCollectorPerformance(books.reader).execute(alpha.admin, MARCH)
    await books.seeder.import_run(beta, None, ImportStatus.SUCCEEDED, created=3)
    imports = await SummarizeImports(books.reader).execute(alpha.admin, MARCH)
    assert (imports.totals.runs, imports.by_source) == (0, [])
    aging = await AgeBalances(books.reader, books.seeder.clock).execute(alpha.admin)

    assert (collections.totals, recovery.by_creditor, aging.currencies) == ([], [], [])
    assert [line.collector_id for line in performance.collectors] == [alpha.actors["c1"].user_id]
