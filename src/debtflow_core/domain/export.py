"""Exports: a report written as a CSV file to object storage, for download."""

from __future__ import annotations

import enum
from datetime import date, datetime
from uuid import UUID

import msgspec


class ExportKind(enum.StrEnum):
    """The report an export holds (see :mod:`debtflow_core.use_cases.reports`)."""

    COLLECTIONS = "collections"
    AGING = "aging"
    RECOVERY = "recovery"
    COLLECTOR_PERFORMANCE = "collector_performance"
    IMPORTS = "imports"


class ExportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED_EXPORTS = frozenset({ExportStatus.SUCCEEDED, ExportStatus.FAILED})


class ExportParameters(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """What the report is computed over: a period (``from`` and ``to``, whole UTC days,
    both included) for every kind but ``aging``, which takes an ``as_of`` day instead
    (today, UTC, when omitted)."""

    from_: date | None = msgspec.field(default=None, name="from")
    to: date | None = None
    as_of: date | None = None


class Export(msgspec.Struct, frozen=True, kw_only=True):
    """One export of one report of one agency, and where its CSV file is.

    ``requested_by`` is the user who asked for it; ``None`` for a nightly export.
    ``storage_key`` is where the file goes (``{agency}/exports/{YYYY/MM/DD}/{id}.csv``,
    by the day it was requested); ``rows`` counts its data lines once it has succeeded.
    """

    id: UUID
    agency_id: UUID
    kind: ExportKind
    parameters: ExportParameters
    status: ExportStatus
    file_name: str
    storage_key: str
    requested_by: UUID | None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rows: int | None = None
    failure_reason: str | None = None


class NightlyExports(msgspec.Struct, frozen=True, kw_only=True):
    """The report kinds an agency has exported every night, for the day before.

    ``inherited`` is true while the agency has not chosen: it then gets the installation's
    default (``DEBTFLOW_NIGHTLY_EXPORTS``).
    """

    kinds: tuple[ExportKind, ...]
    inherited: bool = False
