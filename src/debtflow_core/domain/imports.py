from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import msgspec


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


class FileSourceKind(enum.StrEnum):
    SFTP = "sftp"
    LOCAL = "local"


class FileSource(msgspec.Struct, frozen=True, kw_only=True):
    """An agency's placement-file drop: an SFTP directory polled on a cron schedule.

    ``secret_env`` names the environment variable that holds the password or private key;
    the secret itself is never stored. ``host_key`` pins the server's public key.
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
    """Why one row of a placement file was refused. Personal data in ``value`` is redacted."""

    line: int
    column: str | None
    reason: str
    value: str | None


class ImportRun(msgspec.Struct, frozen=True, kw_only=True):
    """One import of one placement file, with its outcome counts and timings."""

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
