"""The CSV layout of each export kind: one header, then one row per line of the report.

Amounts are exact integers of minor units, each beside its currency; rates are whole basis
points; a figure the report leaves out (``null``) is an empty cell. Text that a
spreadsheet would run as a formula (a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return) is written with a leading ``'``, so opening an export never runs
what a creditor or a file put into a name.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from uuid import UUID

from debtflow_core.domain.activity import ActivityType
from debtflow_core.domain.imports import ImportStatus
from debtflow_core.use_cases.reports import (
    AgingReport,
    Collected,
    CollectionsSummary,
    ImportFigures,
    ImportsReport,
    PerformanceReport,
    Recovered,
    RecoveryReport,
)

Row = tuple[object, ...]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

COLLECTIONS_COLUMNS = (
    "section",
    "group",
    "currency",
    "payments",
    "collected",
    "refunds",
    "refunded",
    "net",
)
AGING_COLUMNS = ("as_of", "currency", "bucket", "accounts", "balance")
RECOVERY_COLUMNS = (
    "section",
    "original_creditor",
    "month",
    "currency",
    "accounts",
    "placed",
    "collected",
    "recovery_rate_bps",
)
PERFORMANCE_COLUMNS = ("collector_id", "measure", "currency", "count", "amount")
IMPORTS_COLUMNS = (
    "section",
    "file_source_id",
    "runs",
    *(f"runs_{status}" for status in ImportStatus),
    "rows_read",
    "rows_created",
    "rows_updated",
    "rows_failed",
    "error_rate_bps",
)


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell: ``None`` empty, formula-like text defused, the rest as is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """Write the header and ``rows`` to ``path`` (UTF-8, CRLF line ends); how many rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([safe_cell(value) for value in row])
            count += 1
    return count


def _id(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def collections_rows(report: CollectionsSummary) -> Iterator[Row]:
    """Sections ``total`` (no group), ``collector`` (the collector's id; empty: accounts
    unassigned), ``processor`` (its id) and ``day`` (YYYY-MM-DD)."""
    lines: list[tuple[str, str | None, Collected]] = [
        *(("total", None, line) for line in report.totals),
        *(("collector", _id(line.collector_id), line) for line in report.by_collector),
        *(("processor", str(line.processor_id), line) for line in report.by_processor),
        *(("day", line.day.isoformat(), line) for line in report.by_day),
    ]
    for section, group, line in lines:
        yield (
            section,
            group,
            line.currency,
            line.payments,
            line.collected,
            line.refunds,
            line.refunded,
            line.net,
        )


def aging_rows(report: AgingReport) -> Iterator[Row]:
    """Per currency, every bucket in the order of
    :data:`~debtflow_core.use_cases.reports.AGING_BUCKETS`, empty ones too."""
    for currency in report.currencies:
        for bucket in currency.buckets:
            yield (
                report.as_of.isoformat(),
                currency.currency,
                bucket.bucket,
                bucket.accounts,
                bucket.balance,
            )


def recovery_rows(report: RecoveryReport) -> Iterator[Row]:
    """Sections ``creditor_month``, ``creditor`` (no month) and ``month`` (no creditor)."""
    for line in report.by_creditor_and_month:
        yield ("creditor_month", line.original_creditor, line.month, *_recovered(line))
    for by_creditor in report.by_creditor:
        yield ("creditor", by_creditor.original_creditor, None, *_recovered(by_creditor))
    for by_month in report.by_month:
        yield ("month", None, by_month.month, *_recovered(by_month))


def _recovered(line: Recovered) -> Row:
    return (line.currency, line.accounts, line.placed, line.collected, line.recovery_rate_bps)


def performance_rows(report: PerformanceReport) -> Iterator[Row]:
    """Per collector: ``accounts_assigned`` (a count), ``activity_<type>`` for every
    activity type (counts), then ``promises_to_pay`` and ``payments`` per currency (count
    and amount)."""
    for collector in report.collectors:
        id_ = str(collector.collector_id)
        yield (id_, "accounts_assigned", None, collector.accounts_assigned, None)
        for type_ in ActivityType:
            yield (id_, f"activity_{type_}", None, collector.activities[type_], None)
        for promised in collector.promises_to_pay:
            yield (id_, "promises_to_pay", promised.currency, promised.count, promised.amount)
        for paid in collector.payments:
            yield (id_, "payments", paid.currency, paid.count, paid.amount)


def imports_rows(report: ImportsReport) -> Iterator[Row]:
    """Sections ``total`` (no source) and ``source`` (its id; empty: imported by hand)."""
    yield ("total", None, *_figures(report.totals))
    for source in report.by_source:
        yield ("source", _id(source.file_source_id), *_figures(source))


def _figures(figures: ImportFigures) -> Row:
    return (
        figures.runs,
        *(figures.runs_by_status[status] for status in ImportStatus),
        figures.rows_read,
        figures.rows_created,
        figures.rows_updated,
        figures.rows_failed,
        figures.error_rate_bps,
    )
