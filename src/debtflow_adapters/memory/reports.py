"""The report reader over an :class:`InMemoryStore`: the same groups as the SQL one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from datetime import date, datetime
from typing import Generic, TypeVar
from uuid import UUID

from debtflow_adapters.memory.unit_of_work import InMemoryStore
from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.domain.payment import Payment, PaymentStatus, RefundStatus
from debtflow_core.domain.user import Role
from debtflow_core.ports.reports import (
    ActivityTally,
    AgeBand,
    AssignmentTally,
    BandTally,
    CollectionTallies,
    CollectorTally,
    DayTally,
    ImportTally,
    PerformanceTallies,
    Period,
    PlacementTally,
    ProcessorTally,
    PromiseTally,
    ReportReader,
)

K = TypeVar("K", bound=Hashable)

OPEN = frozenset({AccountStatus.ACTIVE, AccountStatus.DISPUTED})


def _within(moment: datetime, period: Period) -> bool:
    return period.start <= moment < period.end


class _Sums(Generic[K]):
    """Counts and amounts per (key, currency)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[K, str]] = Counter()
        self.amounts: Counter[tuple[K, str]] = Counter()

    def add(self, key: K, currency: str, amount: int) -> None:
        self.counts[key, currency] += 1
        self.amounts[key, currency] += amount

    def items(self) -> Iterable[tuple[K, str, int, int]]:
        for (key, currency), count in self.counts.items():
            yield key, currency, count, self.amounts[key, currency]


class InMemoryReportReader(ReportReader):
    """Reads the committed state of ``store``; one call runs without awaiting, so it sees
    one consistent state."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def _accounts(self, agency_id: UUID) -> dict[UUID, Account]:
        return {a.id: a for a in self._store.accounts.values() if a.agency_id == agency_id}

    def _completed(self, agency_id: UUID) -> dict[UUID, Payment]:
        return {
            p.id: p
            for p in self._store.payments.values()
            if p.agency_id == agency_id and p.status is PaymentStatus.COMPLETED
        }

    async def collections(self, agency_id: UUID, period: Period) -> CollectionTallies:
        accounts = self._accounts(agency_id)
        payments = {p.id: p for p in self._store.payments.values() if p.agency_id == agency_id}
        collectors: tuple[_Sums[UUID | None], _Sums[UUID | None]] = (_Sums(), _Sums())
        processors: tuple[_Sums[UUID], _Sums[UUID]] = (_Sums(), _Sums())
        days: tuple[_Sums[date], _Sums[date]] = (_Sums(), _Sums())
        taken = [
            (0, p, p.amount, p.created_at)
            for p in payments.values()
            if p.status is PaymentStatus.COMPLETED and _within(p.created_at, period)
        ]
        refunded = [
            (1, payments[r.payment_id], r.amount, r.completed_at)
            for r in self._store.refunds.values()
            if r.agency_id == agency_id
            # A pending refund has given nothing back yet, a failed one never did.
            and r.status is RefundStatus.COMPLETED
            and _within(r.completed_at, period)
        ]
        for side, payment, amount, at in taken + refunded:
            collector = accounts[payment.account_id].assigned_collector_id
            collectors[side].add(collector, payment.currency, amount)
            processors[side].add(payment.processor_id, payment.currency, amount)
            days[side].add(at.date(), payment.currency, amount)
        by_collector = [
            [
                CollectorTally(collector_id=k, currency=c, count=n, amount=a)
                for k, c, n, a in s.items()
            ]
            for s in collectors
        ]
        by_processor = [
            [
                ProcessorTally(processor_id=k, currency=c, count=n, amount=a)
                for k, c, n, a in s.items()
            ]
            for s in processors
        ]
        by_day = [
            [DayTally(day=k, currency=c, count=n, amount=a) for k, c, n, a in s.items()]
            for s in days
        ]
        return CollectionTallies(
            payments_by_collector=by_collector[0],
            payments_by_processor=by_processor[0],
            payments_by_day=by_day[0],
            refunds_by_collector=by_collector[1],
            refunds_by_processor=by_processor[1],
            refunds_by_day=by_day[1],
        )

    async def aging(self, agency_id: UUID, bands: list[AgeBand]) -> list[BandTally]:
        sums: _Sums[str] = _Sums()
        for account in self._accounts(agency_id).values():
            if account.status not in OPEN:
                continue
            band = next(b for b in bands if _in_band(account, b))
            sums.add(band.name, account.currency, account.current_balance)
        return [BandTally(band=k, currency=c, count=n, amount=a) for k, c, n, a in sums.items()]

    async def recovery(self, agency_id: UUID, period: Period) -> list[PlacementTally]:
        placed = {
            a.id: a for a in self._accounts(agency_id).values() if _within(a.placed_at, period)
        }
        collected: Counter[UUID] = Counter()
        for payment in self._completed(agency_id).values():
            if payment.account_id in placed:
                collected[payment.account_id] += payment.amount
        for refund in self._store.refunds.values():
            account_id = self._store.payments[refund.payment_id].account_id
            if account_id in placed and refund.status is RefundStatus.COMPLETED:
                collected[account_id] -= refund.amount
        groups: dict[tuple[str, str, str], list[int]] = {}
        for account in placed.values():
            key = (account.original_creditor, account.placed_at.strftime("%Y-%m"), account.currency)
            group = groups.setdefault(key, [0, 0, 0])
            group[0] += 1
            group[1] += account.placed_balance
            group[2] += collected[account.id]
        return [
            PlacementTally(
                original_creditor=creditor,
                month=month,
                currency=currency,
                accounts=accounts,
                placed=amount,
                collected=recovered,
            )
            for (creditor, month, currency), (accounts, amount, recovered) in groups.items()
        ]

    async def performance(self, agency_id: UUID, period: Period) -> PerformanceTallies:
        accounts = self._accounts(agency_id)
        assignments = Counter(
            a.assigned_collector_id for a in accounts.values() if a.assigned_collector_id
        )
        collectors = {
            u.id
            for u in self._store.users.values()
            if u.agency_id == agency_id and u.role is Role.COLLECTOR
        } | set(assignments)
        activities: Counter[tuple[UUID, ActivityType]] = Counter()
        promises: _Sums[UUID] = _Sums()
        for activity in self._store.activities.values():
            if (
                activity.agency_id != agency_id
                or activity.actor_id is None
                or not _within(activity.occurred_at, period)
            ):
                continue
            activities[activity.actor_id, activity.type] += 1
            if activity.type is ActivityType.PROMISE_TO_PAY and activity.promise is not None:
                currency = accounts[activity.account_id].currency
                promises.add(activity.actor_id, currency, activity.promise.amount)
        payments: _Sums[UUID] = _Sums()
        for payment in self._completed(agency_id).values():
            collector = accounts[payment.account_id].assigned_collector_id
            if collector is not None and _within(payment.created_at, period):
                payments.add(collector, payment.currency, payment.amount)
        return PerformanceTallies(
            collectors=list(collectors),
            assignments=[
                AssignmentTally(collector_id=k, accounts=n) for k, n in assignments.items()
            ],
            activities=[
                ActivityTally(actor_id=actor, type=type_, count=n)
                for (actor, type_), n in activities.items()
            ],
            promises=[
                PromiseTally(actor_id=k, currency=c, count=n, amount=a)
                for k, c, n, a in promises.items()
            ],
            payments=[
                CollectorTally(collector_id=k, currency=c, count=n, amount=a)
                for k, c, n, a in payments.items()
            ],
        )

    async def imports(self, agency_id: UUID, period: Period) -> list[ImportTally]:
        groups: dict[tuple[UUID | None, ImportStatus], list[int]] = {}
        for run in self._store.import_runs.values():
            if run.agency_id != agency_id or not _within(run.created_at, period):
                continue
            group = groups.setdefault((run.file_source_id, run.status), [0, 0, 0, 0, 0])
            for index, count in enumerate(
                (1, run.rows_read, run.rows_created, run.rows_updated, run.rows_failed)
            ):
                group[index] += count
        return [
            ImportTally(
                file_source_id=source,
                status=status,
                runs=runs,
                rows_read=read,
                rows_created=created,
                rows_updated=updated,
                rows_failed=failed,
            )
            for (source, status), (runs, read, created, updated, failed) in groups.items()
        ]


def _in_band(account: Account, band: AgeBand) -> bool:
    charged_off = account.charge_off_date
    if charged_off is None or band.unknown:
        return charged_off is None and band.unknown
    return (band.since is None or band.since <= charged_off) and (
        band.until is None or charged_off <= band.until
    )
