from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

import msgspec

from debtflow_core.ids import new_id


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


# A run in one of these is not imported again: its file's content has had its import.
FINISHED_STATUSES = frozenset(
    {ImportStatus.SUCCEEDED, ImportStatus.PARTIALLY_FAILED, ImportStatus.FAILED}
)


SOURCE_SECRET_PREFIX = "DEBTFLOW_SOURCE_SECRET_"
"""Every ``secret_env`` starts with this: only the worker's environment variables set aside
for file-source secrets may be read for a source. Any other one (the database URL, the JWT
secret, cloud keys) would be sent as a password to a server of the agency's choosing."""

_SOURCE_SECRET_NAME = re.compile(re.escape(SOURCE_SECRET_PREFIX) + r"[A-Za-z0-9_]{1,100}")
_OWN_NAME = re.compile(r"[A-Z0-9]+(?:_[A-Z0-9]+)*")


def is_source_secret_name(name: str) -> bool:
    """Whether ``name`` is a variable set aside for a file source's secret: exactly
    :data:`SOURCE_SECRET_PREFIX` (upper case), then letters, digits or ``_``."""
    return _SOURCE_SECRET_NAME.fullmatch(name) is not None


def agency_secret_prefix(agency_slug: str) -> str:
    """How the names of one agency's source secrets start: :data:`SOURCE_SECRET_PREFIX`,
    the agency's slug in upper case with ``_`` for ``-``, and ``__``
    (``DEBTFLOW_SOURCE_SECRET_ACME_EAST__`` for ``acme-east``)."""
    return f"{SOURCE_SECRET_PREFIX}{agency_slug.upper().replace('-', '_')}__"


def is_agency_secret_name(name: str, agency_slug: str) -> bool:
    """Whether ``name`` is one of agency ``agency_slug``'s source secrets: its
    :func:`agency_secret_prefix`, then upper-case letters and digits with single ``_``
    between them. No other agency's secret ever matches: without a ``__`` after the
    prefix, a name of one agency cannot run on into another's (``acme`` and ``acme-east``).
    """
    prefix = agency_secret_prefix(agency_slug)
    own = name[len(prefix) :]
    return (
        name.startswith(prefix)
        and is_source_secret_name(name)
        and _OWN_NAME.fullmatch(own) is not None
    )


def local_path_parts(path: str) -> list[str]:
    """The parts of a ``local`` source's path below the sources root, as the reader reads
    it: relative to the root (a leading ``/`` is the root itself), ``.`` and ``..`` folded
    in. ``["."]`` is the root itself; a first part ``..`` leads out of it. The first part is
    the agency's folder (its slug): ``acme/inbound`` is ``["acme", "inbound"]``."""
    return posixpath.normpath(path.lstrip("/") or ".").split("/")


class FileSourceKind(enum.StrEnum):
    SFTP = "sftp"
    LOCAL = "local"


class FileSource(msgspec.Struct, frozen=True, kw_only=True):
    """An agency's placement-file drop: an SFTP directory polled on a cron schedule.

    ``secret_env`` names the environment variable that holds the password or private key
    (one of the agency's, see :func:`is_agency_secret_name`); the secret itself is never
    stored. ``host_key`` pins the server's public key.
    """

    id: UUID
    agency_id: UUID
    name: str
    kind: FileSourceKind
    host: str | None
    port: int
    username: str | None
    secret_env: str | None
    host_key: str | None
    directory: str
    pattern: str
    archive_directory: str | None
    delimiter: str
    column_mapping: dict[str, str]
    schedule: str
    active: bool
    created_at: datetime


class ImportRowError(msgspec.Struct, frozen=True, kw_only=True):
    """Why one row of a placement file was refused. Personal data in ``value`` is redacted.

    ``line`` is the physical line the row starts on (the header is line 1).
    """

    line: int
    column: str | None
    reason: str
    value: str | None


def superseded(line: int, by_line: int) -> ImportRowError:
    """The error of a row whose account a later row of the same file names again."""
    return ImportRowError(
        line=line,
        column="account_id",
        reason=f"superseded by line {by_line}, which has the same account_id",
        value=None,
    )


def currency_kept(line: int, currency: str, kept: str) -> ImportRowError:
    """The error of a row that names an existing account in another currency than the
    account's: its balance, payments and refunds are counted in its own."""
    return ImportRowError(
        line=line,
        column="currency",
        reason=f"the account is in {kept}; a placement cannot change an account's currency",
        value=currency,
    )


class ImportRun(msgspec.Struct, frozen=True, kw_only=True):
    """One import of one placement file, with its outcome counts and timings.

    A run is unique per agency and file content (``sha256``). Counts cover the rows
    committed so far: ``rows_read == rows_created + rows_updated + rows_failed`` once it
    has finished (an account named twice in a file counts once; its earlier row fails).
    ``lines_done`` is the last line whose outcome is committed: a rerun resumes after it.
    ``attempt`` grows each time a run is (re)started; a writer of an older attempt is
    refused, so two workers never import one file at once. ``ignored_columns`` are the
    header's columns that the format does not know. ``delimiter`` and ``column_mapping``
    are how the file is read (its source's, or what an upload said), kept so that the
    worker that imports a queued run reads it as its sender meant.

    ``progressed_at`` is the run's heartbeat: when it was stored, started, last committed
    a batch or finished, or was last queued again because it had stalled (None only on a
    run not stored yet). A run whose heartbeat stops while it is queued or running has
    lost its job.
    """

    id: UUID
    agency_id: UUID
    file_source_id: UUID | None
    file_name: str
    sha256: str
    storage_key: str | None
    status: ImportStatus
    rows_read: int
    rows_created: int
    rows_updated: int
    rows_failed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lines_done: int = 0
    attempt: int = 0
    ignored_columns: tuple[str, ...] = ()
    failure_reason: str | None = None
    delimiter: str = ","
    column_mapping: dict[str, str] = msgspec.field(default_factory=dict)
    progressed_at: datetime | None = None

    @classmethod
    def queued(
        cls,
        *,
        agency_id: UUID,
        file_source_id: UUID | None,
        file_name: str,
        sha256: str,
        storage_key: str | None,
        at: datetime,
        delimiter: str,
        column_mapping: Mapping[str, str],
    ) -> ImportRun:
        """A new run of a file, queued at ``at``: nothing of it read yet."""
        return cls(
            id=new_id(),
            agency_id=agency_id,
            file_source_id=file_source_id,
            file_name=file_name,
            sha256=sha256,
            storage_key=storage_key,
            status=ImportStatus.QUEUED,
            rows_read=0,
            rows_created=0,
            rows_updated=0,
            rows_failed=0,
            created_at=at,
            started_at=None,
            finished_at=None,
            delimiter=delimiter,
            column_mapping=dict(column_mapping),
        )

    def reopened_as(self, anew: ImportRun) -> ImportRun:
        """``anew``, a run of the same content not stored, in the place of this one: it
        keeps this run's id (and its backup, when ``anew`` has none) under a new attempt,
        and is otherwise as new, from its reading of the file to its counts and times."""
        return msgspec.structs.replace(
            anew,
            id=self.id,
            storage_key=anew.storage_key or self.storage_key,
            attempt=self.attempt + 1,
            progressed_at=anew.created_at,
        )
