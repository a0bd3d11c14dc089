"""Reports: agency-wide figures for managing the work, read through a :class:`ReportReader`.

Every amount is an exact integer of minor units beside its currency, and no figure ever
adds two currencies together: a report has one line per currency where money is involved.
Reports are bounded by their parameters (a period of at most :data:`MAX_PERIOD_DAYS`
days, or one date), never paginated. Agency admins and read-only users may read them;
collectors may not (see :func:`debtflow_core.policy.require_report_reader`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.errors import ValidationFailed
from debtflow_core.policy import require_report_reader
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.reports import (
    AgeBand,
    ImportTally,
    Period,
    PlacementTally,
    ReportReader,
    Tally,
)

MAX_PERIOD_DAYS = 366
EARLIEST = date(1900, 1, 1)
LATEST = date(9999, 12, 30)
"""Report dates lie in ``[EARLIEST, LATEST]``: far enough from the calendar's ends for the
arithmetic on them (the day after a period, two years before an as-of date)."""

BASIS_POINTS = 10_000


def require_report_date(value: date, *, field: str) -> date:
    """``value``, a date reports can cover (:data:`EARLIEST` to :data:`LATEST`)."""
    if not EARLIEST <= value <= LATEST:
        raise ValidationFailed(f"must be between {EARLIEST} and {LATEST}", field=field)
    return value


class ReportPeriod(msgspec.Struct, frozen=True, kw_only=True):
    """Whole UTC days from ``from_`` to ``to``, both included."""

    from_: date = msgspec.field(name="from")
    to: date

    def validated(self) -> Period:
        """The period as UTC moments; ValidationFailed naming ``from`` or ``to`` when a date
        is out of range, ``to`` is before ``from``, or the period is too long."""
        require_report_date(self.from_, field="from")
        require_report_date(self.to, field="to")
        if self.to < self.from_:
            raise ValidationFailed("must not be before from", field="to")
        if (self.to - self.from_).days + 1 > MAX_PERIOD_DAYS:
            raise ValidationFailed(
                f"a period is at most {MAX_PERIOD_DAYS} days, from and to included", field="to"
            )
        return Period(
            start=datetime.combine(self.from_, time(), UTC),
            end=datetime.combine(self.to + timedelta(days=1), time(), UTC),
        )


def _rate(part: int, whole: int) -> int | None:
    """``part / whole`` in whole basis points, rounded down; ``None`` when ``whole`` is 0."""
    return part * BASIS_POINTS // whole if whole else None


# Collections


class Collected(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    payments: int
    """Completed payments taken (created) in the period."""
    collected: int
    refunds: int
    """Refunds made in the period, on payments of any day."""
    refunded: int
    net: int
    """``collected - refunded``; negative when refunds outweigh collections."""


class CollectedByCollector(Collected, frozen=True, kw_only=True):
    collector_id: UUID | None
    """The account's assigned collector now; ``null`` for unassigned accounts."""


class CollectedByProcessor(Collected, frozen=True, kw_only=True):
    processor_id: UUID


class CollectedByDay(Collected, frozen=True, kw_only=True):
    day: date


class CollectionsSummary(msgspec.Struct, frozen=True, kw_only=True):
    from_: date = msgspec.field(name="from")
    to: date
    totals: list[Collected]
    by_collector: list[CollectedByCollector]
    by_processor: list[CollectedByProcessor]
    by_day: list[CollectedByDay]


R = TypeVar("R", bound=Collected)
L = TypeVar("L", bound="Recovered")
T = TypeVar("T", bound=Tally)


def _collected_lines(
    line: type[R],
    field: str,
    payments: Iterable[T],
    refunds: Iterable[T],
    key: Callable[[T], Any],
) -> list[R]:
    """Payments and refunds side by side, one ``line`` per ``key`` (named ``field``) and
    currency, ordered by key then currency."""
    sums: dict[tuple[Any, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for offset, tallies in ((0, payments), (2, refunds)):
        for tally in tallies:
            group = sums[key(tally), tally.currency]
            group[offset] += tally.count
            group[offset + 1] += tally.amount
    return [
        line(
            **({field: group} if field else {}),
            currency=currency,
            payments=counted,
            collected=collected,
            refunds=refund_count,
            refunded=refunded,
            net=collected - refunded,
        )
        for (group, currency), (counted, collected, refund_count, refunded) in sorted(
            sums.items(), key=lambda item: (str(item[0][0]), item[0][1])
        )
    ]


class SummarizeCollections:
    """Money collected in a period: completed payments, refunds and the net, per currency,
    in total and broken down by collector, by processor and by UTC day.

    A payment counts on the UTC day it was taken (created), once it has completed; pending
    and failed payments never count. A refund counts on the day it was made, even when its
    payment was taken before the period. Both count for the account's currently assigned
    collector (``null``: unassigned) and for the payment's processor. Agency admins and
    read-only users only.
    """

    def __init__(self, reader: ReportReader) -> None:
        self._reader = reader

    async def execute(self, actor: Actor, period: ReportPeriod) -> CollectionsSummary:
        require_report_reader(actor)
        tallies = await self._reader.collections(actor.agency_id, period.validated())
        return CollectionsSummary(
            from_=period.from_,
            to=period.to,
            # Every payment has exactly one processor: its groups add up to the totals.
            totals=_collected_lines(
                Collected,
                "",
                tallies.payments_by_processor,
                tallies.refunds_by_processor,
                lambda _: None,
            ),
            by_collector=_collected_lines(
                CollectedByCollector,
                "collector_id",
                tallies.payments_by_collector,
                tallies.refunds_by_collector,
                lambda t: t.collector_id,
            ),
            by_processor=_collected_lines(
                CollectedByProcessor,
                "processor_id",
                tallies.payments_by_processor,
                tallies.refunds_by_processor,
                lambda t: t.processor_id,
            ),
            by_day=_collected_lines(
                CollectedByDay,
                "day",
                tallies.payments_by_day,
                tallies.refunds_by_day,
                lambda t: t.day,
            ),
        )


# Aging


class AgingBucket(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str
    accounts: int
    balance: int


class CurrencyAging(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    accounts: int
    balance: int
    buckets: list[AgingBucket]
    """Every bucket, in the order of :data:`AGING_BUCKETS`, empty ones included."""


class AgingReport(msgspec.Struct, frozen=True, kw_only=True):
    as_of: date
    currencies: list[CurrencyAging]


AGING_BUCKETS = ("0-90", "91-180", "181-365", "1-2y", "over-2y", "unknown")
"""Days since charge-off as of the report's date: 0-90, 91-180, 181-365, 366-730 (one to two
years) and over 730; ``unknown`` for accounts without a charge-off date."""


def age_bands(as_of: date) -> list[AgeBand]:
    """The buckets as ranges of charge-off dates. A charge-off after ``as_of`` is age 0."""

    def ago(days: int) -> date:
        return as_of - timedelta(days=days)

    return [
        AgeBand(name="0-90", since=ago(90)),
        AgeBand(name="91-180", since=ago(180), until=ago(91)),
        AgeBand(name="181-365", since=ago(365), until=ago(181)),
        AgeBand(name="1-2y", since=ago(730), until=ago(366)),
        AgeBand(name="over-2y", until=ago(731)),
        AgeBand(name="unknown", unknown=True),
    ]


class AgeBalances:
    """The current balances of open accounts (active or disputed), per currency, bucketed
    by days since charge-off as of ``as_of`` (today, UTC, by default): how many accounts,
    and the sum of their balances. Balances are today's whatever ``as_of`` says: the date
    only sets the ages. Agency admins and read-only users only.
    """

    def __init__(self, reader: ReportReader, clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def execute(self, actor: Actor, as_of: date | None = None) -> AgingReport:
        require_report_reader(actor)
        if as_of is None:
            day = self._clock.now().date()
        else:
            day = require_report_date(as_of, field="as_of")
        tallies = await self._reader.aging(actor.agency_id, age_bands(day))
        found: dict[str, dict[str, Tally]] = defaultdict(dict)
        for tally in tallies:
            found[tally.currency][tally.band] = tally
        currencies = []
        for currency in sorted(found):
            buckets = [
                AgingBucket(
                    bucket=name,
                    accounts=found[currency][name].count if name in found[currency] else 0,
                    balance=found[currency][name].amount if name in found[currency] else 0,
                )
                for name in AGING_BUCKETS
            ]
            currencies.append(
                CurrencyAging(
                    currency=currency,
                    accounts=sum(b.accounts for b in buckets),
                    balance=sum(b.balance for b in buckets),
                    buckets=buckets,
                )
            )
        return AgingReport(as_of=day, currencies=currencies)


# Recovery


class Recovered(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    accounts: int
    placed: int
    """The balances placed."""
    collected: int
    """Completed payments on these accounts to date, net of refunds."""
    recovery_rate_bps: int | None
    """``collected / placed`` in basis points (10000 = 100 %), rounded down; ``null`` when
    nothing was placed. Exact figures are ``collected`` and ``placed``."""


class RecoveredByCreditorMonth(Recovered, frozen=True, kw_only=True):
    original_creditor: str
    month: str


class RecoveredByCreditor(Recovered, frozen=True, kw_only=True):
    original_creditor: str


class RecoveredByMonth(Recovered, frozen=True, kw_only=True):
    month: str


class RecoveryReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: date = msgspec.field(name="from")
    to: date
    by_creditor_and_month: list[RecoveredByCreditorMonth]
    by_creditor: list[RecoveredByCreditor]
    by_month: list[RecoveredByMonth]


def _recovered_lines(
    line: type[L], fields: tuple[str, ...], tallies: Iterable[PlacementTally]
) -> list[L]:
    sums: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for tally in tallies:
        group = sums[(*(getattr(tally, f) for f in fields), tally.currency)]
        group[0] += tally.accounts
        group[1] += tally.placed
        group[2] += tally.collected
    return [
        line(
            **dict(zip(fields, key[:-1], strict=True)),
            currency=key[-1],
            accounts=accounts,
            placed=placed,
            collected=collected,
            recovery_rate_bps=_rate(collected, placed),
        )
        for key, (accounts, placed, collected) in sorted(sums.items())
    ]


class MeasureRecovery:
    """How much of what creditors placed in a period has been recovered: per original
    creditor and UTC placement month, per currency — the accounts placed, the balance
    placed, what their completed payments have collected to date net of refunds, and the
    recovery rate in basis points; with the same per creditor and per month. Agency
    admins and read-only users only.
    """

    def __init__(self, reader: ReportReader) -> None:
        self._reader = reader

    async def execute(self, actor: Actor, period: ReportPeriod) -> RecoveryReport:
        require_report_reader(actor)
        tallies = await self._reader.recovery(actor.agency_id, period.validated())
        return RecoveryReport(
            from_=period.from_,
            to=period.to,
            by_creditor_and_month=_recovered_lines(
                RecoveredByCreditorMonth, ("original_creditor", "month"), tallies
            ),
            by_creditor=_recovered_lines(RecoveredByCreditor, ("original_creditor",), tallies),
            by_month=_recovered_lines(RecoveredByMonth, ("month",), tallies),
        )


# Collector performance


class Counted(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    count: int
    amount: int


class CollectorPerformance(msgspec.Struct, frozen=True, kw_only=True):
    collector_id: UUID
    accounts_assigned: int
    """Accounts assigned to the collector now, whatever their status."""
    activities: dict[ActivityType, int]
    """Activities the collector recorded in the period, by type (every type, zeros too)."""
    promises_to_pay: list[Counted]
    """Promises the collector recorded in the period, and their promised amounts."""
    payments: list[Counted]
    """Completed payments taken in the period on the collector's accounts."""


class PerformanceReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: date = msgspec.field(name="from")
    to: date
    collectors: list[CollectorPerformance]


def _counted(tallies: Iterable[Tally]) -> list[Counted]:
    return sorted(
        (Counted(currency=t.currency, count=t.count, amount=t.amount) for t in tallies),
        key=lambda c: c.currency,
    )


class MeasureCollectorPerformance:
    """What each collector did in a period: the accounts assigned to them (now), the
    activities they recorded by type, the promises to pay they recorded (count and amount
    per currency), and the completed payments taken on their accounts (count and amount
    per currency). Collectors are the agency's users with the collector role, and anyone
    else with accounts assigned. Agency admins and read-only users only.
    """

    def __init__(self, reader: ReportReader) -> None:
        self._reader = reader

    async def execute(self, actor: Actor, period: ReportPeriod) -> PerformanceReport:
        require_report_reader(actor)
        tallies = await self._reader.performance(actor.agency_id, period.validated())
        assigned = {t.collector_id: t.accounts for t in tallies.assignments}
        activities: dict[UUID, dict[ActivityType, int]] = defaultdict(
            lambda: dict.fromkeys(ActivityType, 0)
        )
        for activity in tallies.activities:
            activities[activity.actor_id][activity.type] += activity.count
        promises: dict[UUID, list[Tally]] = defaultdict(list)
        for promise in tallies.promises:
            promises[promise.actor_id].append(promise)
        payments: dict[UUID | None, list[Tally]] = defaultdict(list)
        for payment in tallies.payments:
            payments[payment.collector_id].append(payment)
        return PerformanceReport(
            from_=period.from_,
            to=period.to,
            collectors=[
                CollectorPerformance(
                    collector_id=collector,
                    accounts_assigned=assigned.get(collector, 0),
                    activities=activities[collector],
                    promises_to_pay=_counted(promises[collector]),
                    payments=_counted(payments[collector]),
                )
                for collector in sorted(set(tallies.collectors), key=str)
            ],
        )


# Imports


class ImportFigures(msgspec.Struct, frozen=True, kw_only=True):
    runs: int
    runs_by_status: dict[ImportStatus, int]
    """Every status, zeros included."""
    rows_read: int
    rows_created: int
    rows_updated: int
    rows_failed: int
    error_rate_bps: int | None
    """``rows_failed / rows_read`` in basis points, rounded down; ``null`` when no row was
    read. Exact figures are ``rows_failed`` and ``rows_read``."""


class SourceImports(ImportFigures, frozen=True, kw_only=True):
    file_source_id: UUID | None
    """The file source the runs came from; ``null`` for files imported by hand."""


class ImportsReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: date = msgspec.field(name="from")
    to: date
    totals: ImportFigures
    by_source: list[SourceImports]


def _import_figures(tallies: list[ImportTally]) -> dict[str, Any]:
    runs_by_status = dict.fromkeys(ImportStatus, 0)
    for tally in tallies:
        runs_by_status[tally.status] += tally.runs
    read = sum(t.rows_read for t in tallies)
    failed = sum(t.rows_failed for t in tallies)
    return {
        "runs": sum(runs_by_status.values()),
        "runs_by_status": runs_by_status,
        "rows_read": read,
        "rows_created": sum(t.rows_created for t in tallies),
        "rows_updated": sum(t.rows_updated for t in tallies),
        "rows_failed": failed,
        "error_rate_bps": _rate(failed, read),
    }


class SummarizeImports:
    """Placement imports in a period: the runs created in it, by status, and their rows by
    outcome (created, updated, failed) with the error rate, in total and per file source
    (``null``: files imported by hand). A run still going counts the rows committed so
    far. Agency admins and read-only users only.
    """

    def __init__(self, reader: ReportReader) -> None:
        self._reader = reader

    async def execute(self, actor: Actor, period: ReportPeriod) -> ImportsReport:
        require_report_reader(actor)
        tallies = await self._reader.imports(actor.agency_id, period.validated())
        by_source: dict[UUID | None, list[ImportTally]] = defaultdict(list)
        for tally in tallies:
            by_source[tally.file_source_id].append(tally)
        return ImportsReport(
            from_=period.from_,
            to=period.to,
            totals=ImportFigures(**_import_figures(tallies)),
            by_source=[
                SourceImports(file_source_id=source, **_import_figures(by_source[source]))
                for source in sorted(by_source, key=str)
            ],
        )
