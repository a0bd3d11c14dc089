"""The read port behind the reports: counts and sums, grouped by the store itself.

Every figure is a count or an exact integer sum of minor units beside its currency;
amounts of different currencies are never added together. The reader groups, the use
cases in :mod:`debtflow_core.use_cases.reports` derive (net amounts, rates, buckets in
order) — so each adapter only has to get the grouping right.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.imports import ImportStatus


class Tally(msgspec.Struct, frozen=True, kw_only=True):
    """How many, and how much in minor units of ``currency``."""

    currency: str
    count: int
    amount: int


class CollectorTally(Tally, frozen=True, kw_only=True):
    collector_id: UUID | None
    """The account's assigned collector; ``None`` for unassigned accounts."""


class ProcessorTally(Tally, frozen=True, kw_only=True):
    processor_id: UUID


class DayTally(Tally, frozen=True, kw_only=True):
    day: date
    """The UTC calendar day."""


class Period(msgspec.Struct, frozen=True, kw_only=True):
    """Moments from ``start`` (inclusive) to ``end`` (exclusive), both UTC."""

    start: datetime
    end: datetime


class CollectionTallies(msgspec.Struct, frozen=True, kw_only=True):
    """Completed payments created in the period, and refunds made in it, grouped three ways.

    A payment counts on the day it was created (taken), whenever it completed; a refund
    on the day it was made, whatever the payment's day. Both are attributed to the
    account's currently assigned collector and to the payment's processor.
    """

    payments_by_collector: list[CollectorTally]
    payments_by_processor: list[ProcessorTally]
    payments_by_day: list[DayTally]
    refunds_by_collector: list[CollectorTally]
    refunds_by_processor: list[ProcessorTally]
    refunds_by_day: list[DayTally]


class AgeBand(msgspec.Struct, frozen=True, kw_only=True):
    """Open accounts whose charge-off date lies in ``[since, until]`` (either end open when
    ``None``); ``unknown`` gathers the accounts with no charge-off date."""

    name: str
    since: date | None = None
    until: date | None = None
    unknown: bool = False


class BandTally(Tally, frozen=True, kw_only=True):
    band: str


class PlacementTally(msgspec.Struct, frozen=True, kw_only=True):
    """Accounts of one creditor placed in one UTC month, in one currency: how many, the
    balance placed, and what their payments have brought in net of refunds to date."""

    original_creditor: str
    month: str
    """``YYYY-MM``."""
    currency: str
    accounts: int
    placed: int
    collected: int


class ActivityTally(msgspec.Struct, frozen=True, kw_only=True):
    actor_id: UUID
    type: ActivityType
    count: int


class PromiseTally(Tally, frozen=True, kw_only=True):
    actor_id: UUID
    """Who recorded the promises; ``amount`` is their promised total."""


class AssignmentTally(msgspec.Struct, frozen=True, kw_only=True):
    collector_id: UUID
    accounts: int


class PerformanceTallies(msgspec.Struct, frozen=True, kw_only=True):
    """The agency's collectors (users with the collector role, and anyone else with
    accounts assigned), with what they did in the period.

    Activities and promises count for whoever recorded them; payments (completed, created
    in the period) for the account's currently assigned collector; assignments are the
    accounts assigned to each now, whatever their status.
    """

    collectors: list[UUID]
    assignments: list[AssignmentTally]
    activities: list[ActivityTally]
    promises: list[PromiseTally]
    payments: list[CollectorTally]


class ImportTally(msgspec.Struct, frozen=True, kw_only=True):
    """Import runs of one file source (``None``: files imported by hand) in one status,
    with their row counts summed."""

    file_source_id: UUID | None
    status: ImportStatus
    runs: int
    rows_read: int
    rows_created: int
    rows_updated: int
    rows_failed: int


class ReportReader(Protocol):
    """Grouped figures of one agency, read in one consistent snapshot per call.

    Reads only; nothing here writes or raises a domain error. Each method groups in the
    store (SQL ``GROUP BY``), so its cost grows with the groups it returns, not with the
    rows it reads.
    """

    async def collections(self, agency_id: UUID, period: Period) -> CollectionTallies: ...

    async def aging(self, agency_id: UUID, bands: list[AgeBand]) -> list[BandTally]:
        """Open accounts (active or disputed) per band and currency: how many, and the sum
        of their current balances. Bands do not overlap; a band without accounts is
        absent."""
        ...

    async def recovery(self, agency_id: UUID, period: Period) -> list[PlacementTally]:
        """Accounts placed in the period, per creditor, placement month and currency."""
        ...

    async def performance(self, agency_id: UUID, period: Period) -> PerformanceTallies: ...

    async def imports(self, agency_id: UUID, period: Period) -> list[ImportTally]:
        """Import runs created in the period, per file source and status."""
        ...
