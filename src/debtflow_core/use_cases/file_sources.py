"""File sources: where an agency's placement files wait, and how often they are polled."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from debtflow_core.actor import Actor
from debtflow_core.auditing import audit_entry
from debtflow_core.domain.imports import (
    FileSource,
    FileSourceKind,
    ImportRun,
    agency_secret_prefix,
    is_agency_secret_name,
    local_path_parts,
)
from debtflow_core.errors import Conflict, NotFound, ValidationFailed
from debtflow_core.ids import new_id
from debtflow_core.placement import COLUMNS
from debtflow_core.policy import in_agency, require_admin
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.job_queue import JobQueue
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.use_cases.imports import FetchPlacementFiles, check_delimiter
from debtflow_core.validation import optional_text, refuse_nul, require_text

POLL_FILE_SOURCE = "debtflow.poll_file_source"
"""The task that polls one source (its argument: ``source_id``)."""

DEFAULT_SCHEDULE = "*/15 * * * *"

_HOST_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
    }
)
_HOST = re.compile(r"[A-Za-z0-9._:\-\[\]]{1,253}")
# (name, lowest, highest) of the five cron fields, as the scheduler (pycron) reads them.
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_CRON_ITEM = re.compile(r"(?:(\*)|(\d+)(?:-(\d+))?)(?:/(\d+))?")


class NewFileSource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A source to create. ``sftp`` needs ``host``, ``username``, ``secret_env`` (the NAME
    of the worker's environment variable that holds the password or private key, which
    starts with ``DEBTFLOW_SOURCE_SECRET_``, the agency's slug and ``__``) and
    ``host_key`` (the server's public key, ``type base64``); ``local`` needs ``directory``
    (in the agency's folder of the sources root: ``acme/inbound`` for ``acme``)."""

    name: str
    kind: FileSourceKind
    host: str | None = None
    port: int = 22
    username: str | None = None
    secret_env: str | None = None
    host_key: str | None = None
    directory: str | None = None
    pattern: str = "*.csv"
    archive_directory: str | None = None
    delimiter: str = ","
    column_mapping: dict[str, str] = msgspec.field(default_factory=dict)
    schedule: str = DEFAULT_SCHEDULE


class FileSourceChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A partial update: only the fields that are set change (``null`` clears)."""

    name: str | UnsetType = UNSET
    kind: FileSourceKind | UnsetType = UNSET
    host: str | UnsetType | None = UNSET
    port: int | UnsetType = UNSET
    username: str | UnsetType | None = UNSET
    secret_env: str | UnsetType | None = UNSET
    host_key: str | UnsetType | None = UNSET
    directory: str | UnsetType = UNSET
    pattern: str | UnsetType = UNSET
    archive_directory: str | UnsetType | None = UNSET
    delimiter: str | UnsetType = UNSET
    column_mapping: dict[str, str] | UnsetType = UNSET
    schedule: str | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class FileSourcePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What this installation lets file sources read, as its operator configured it.

    ``local_sources``: whether ``local`` sources (directories on the workers' machine, inside
    the sources root the operator sets with ``DEBTFLOW_SOURCES_ROOT``, each agency's in the
    root's folder named after its slug) are enabled. Off by default, as on an installation
    without a sources root.
    """

    local_sources: bool = False


_LOCAL_DISABLED = (
    "local file sources are not enabled on this installation: its operator has not set "
    "DEBTFLOW_SOURCES_ROOT, the directory they read from; use an sftp source"
)


class PollRequested(msgspec.Struct, frozen=True, kw_only=True):
    """A poll handed to the workers: it runs soon; its imports show up as import runs."""

    source_id: UUID
    task: str
    requested_at: datetime


def check_cron(value: str) -> str:
    """``value`` normalized, if it is a five-field cron expression the scheduler reads:
    ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n`` or ``a-b/n``, in UTC.
    Days of the week run from 0 (Sunday) to 6."""
    fields = refuse_nul(value, field="schedule").split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValidationFailed(
            "must be a cron expression of five fields: minute hour day-of-month month "
            "day-of-week, like '*/15 * * * *'",
            field="schedule",
        )
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            match = _CRON_ITEM.fullmatch(item)
            if match is None:
                raise ValidationFailed(
                    f"the {name} field {text!r} is not valid cron", field="schedule"
                )
            star, start, end, step = match.groups()
            numbers = [int(n) for n in (start, end) if n is not None]
            if any(not low <= n <= high for n in numbers):
                raise ValidationFailed(
                    f"the {name} field {text!r} must stay within {low}-{high}", field="schedule"
                )
            if end is not None and int(end) < int(start):
                raise ValidationFailed(
                    f"the {name} range {item!r} runs backwards", field="schedule"
                )
            if step is not None and (int(step) == 0 or (star is None and end is None)):
                raise ValidationFailed(
                    f"the {name} step in {item!r} needs '*' or a range before it and must not be 0",
                    field="schedule",
                )
    return " ".join(fields)


def check_host_key(value: str) -> str:
    """The server's public key as ``type base64``, from an OpenSSH public-key line (a
    trailing comment is dropped); the base64 must hold a key of that type."""
    parts = refuse_nul(value, field="host_key").split()
    example = "like 'ssh-ed25519 AAAAC3Nz…' (ssh-keyscan's output without the host name)"
    if len(parts) < 2 or parts[0] not in _HOST_KEY_TYPES:
        raise ValidationFailed(
            f"must be the server's public key as 'type base64', {example}; types: "
            + ", ".join(sorted(_HOST_KEY_TYPES)),
            field="host_key",
        )
    key_type, encoded = parts[0], parts[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            f"the key is not valid base64, {example}", field="host_key"
        ) from None
    length = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + length or blob[4 : 4 + length] != key_type.encode():
        raise ValidationFailed(f"the base64 does not hold a {key_type} key", field="host_key")
    return f"{key_type} {encoded}"


def _column_mapping(mapping: dict[str, str]) -> dict[str, str]:
    checked = {}
    for header, column in mapping.items():
        header = require_text(header, field="column_mapping", max_length=200)
        column = column.strip()
        if column not in COLUMNS:
            raise ValidationFailed(
                f"{header!r} maps to {column!r}, which is not a placement column (see "
                "docs/placement-format.md)",
                field="column_mapping",
            )
        checked[header] = column
    return checked


def _only_sftp(source: FileSource) -> None:
    for name in ("host", "username", "secret_env", "host_key"):
        if getattr(source, name) is not None:
            raise ValidationFailed("only sftp sources have one", field=name)


def _local_path_problem(path: str, agency_slug: str) -> str | None:
    """What is wrong with a local source's ``directory`` or ``archive_directory`` for the
    agency ``agency_slug``, or ``None``. Every agency has its own folder of the sources
    root, named after its slug (a slug has no ``/`` and no ``.``, so it is one whole
    part): nothing outside it, the root and the other agencies' drops included, is any of
    its business. Symbolic links can only be seen on the workers' machine: the reader
    follows none."""
    first = local_path_parts(path)[0]
    if first == "..":
        return (
            "must stay inside the sources root: a path relative to it that '..' does not "
            "lead out of"
        )
    if first != agency_slug:
        return (
            "must be in the agency's own folder of the sources root: a path relative to the "
            f"root whose first part is the agency's slug, like '{agency_slug}/inbound'"
        )
    return None


def _check_local_allowed(policy: FileSourcePolicy, before: FileSource, after: FileSource) -> None:
    """While local sources are disabled, no source becomes local and a local one is not
    kept active; it can still be deactivated, and changed while inactive (into an sftp
    source, say)."""
    if after.kind is not FileSourceKind.LOCAL or policy.local_sources:
        return
    if after.active or before.kind is not FileSourceKind.LOCAL:
        raise ValidationFailed(_LOCAL_DISABLED, field="kind")


def _why_not_pollable(source: FileSource, policy: FileSourcePolicy, agency_slug: str) -> str | None:
    """Why a stored source cannot be polled here (it was stored before a rule, or before the
    operator changed the installation's settings), or ``None``."""
    if source.kind is FileSourceKind.LOCAL and not policy.local_sources:
        return _LOCAL_DISABLED
    if source.kind is FileSourceKind.LOCAL:
        for name in ("directory", "archive_directory"):
            path = getattr(source, name)
            if path is not None and (problem := _local_path_problem(path, agency_slug)):
                return f"its {name} {path!r} {problem}; change it"
    secret_env = source.secret_env or ""
    if source.kind is FileSourceKind.SFTP and not is_agency_secret_name(secret_env, agency_slug):
        return (
            f"its secret_env {secret_env!r} is not a variable set aside for the agency's "
            f"source secrets (its name must start with {agency_secret_prefix(agency_slug)}); "
            "change it"
        )
    return None


async def _agency_slug(uow: UnitOfWork, agency_id: UUID) -> str:
    agency = await uow.agencies.get(agency_id)
    if agency is None:
        raise NotFound.of("agency", agency_id)
    return agency.slug


def _checked(source: FileSource, agency_slug: str) -> FileSource:
    """``source`` normalized, if every field is valid for its kind (for the agency
    ``agency_slug``)."""
    check_delimiter(source.delimiter)
    # For every kind: a local source does not use its port, but it is stored all the same.
    if not 1 <= source.port <= 65535:
        raise ValidationFailed("must be a TCP port, 1-65535", field="port")
    pattern = require_text(source.pattern, field="pattern", max_length=200)
    if "/" in pattern or "\\" in pattern:
        raise ValidationFailed("is a file-name glob, without any directory", field="pattern")
    values: dict[str, object] = {
        "name": require_text(source.name, field="name", max_length=100),
        "directory": require_text(source.directory, field="directory", max_length=1000),
        "pattern": pattern,
        "archive_directory": optional_text(
            source.archive_directory, field="archive_directory", max_length=1000
        ),
        "column_mapping": _column_mapping(source.column_mapping),
        "schedule": check_cron(source.schedule),
    }
    if source.kind is FileSourceKind.LOCAL:
        _only_sftp(source)
        for name in ("directory", "archive_directory"):
            path = values[name]
            if isinstance(path, str) and (problem := _local_path_problem(path, agency_slug)):
                raise ValidationFailed(problem, field=name)
        return msgspec.structs.replace(source, **values)
    for name in ("host", "username", "secret_env", "host_key"):
        if not (getattr(source, name) or "").strip():
            raise ValidationFailed("an sftp source needs one", field=name)
    host = (source.host or "").strip()
    if not _HOST.fullmatch(host):
        raise ValidationFailed("must be a host name or an IP address", field="host")
    secret_env = (source.secret_env or "").strip()
    if not is_agency_secret_name(secret_env, agency_slug):
        prefix = agency_secret_prefix(agency_slug)
        raise ValidationFailed(
            "must be the NAME of an environment variable set aside for this agency's "
            f"file-source secrets: {prefix} then upper-case letters and digits, single _ "
            f"between them (like {prefix}SFTP), not the secret itself",
            field="secret_env",
        )
    return msgspec.structs.replace(
        source,
        **values,
        host=host,
        username=require_text(source.username or "", field="username", max_length=200),
        secret_env=secret_env,
        host_key=check_host_key(source.host_key or ""),
    )


async def _source_in_agency(uow: UnitOfWork, actor: Actor, source_id: UUID) -> FileSource:
    return in_agency(actor, await uow.file_sources.get(source_id), "file source", source_id)


class CreateFileSource:
    """Add a placement-file source to the agency (agency admins only), active at once.

    An ``sftp`` source needs ``host``, ``username``, ``secret_env`` and ``host_key``; a
    ``local`` one a ``directory`` (in the agency's own folder of the installation's sources
    root, the one named after its slug: ``acme/inbound`` for ``acme``; so is its
    ``archive_directory``) and none of the SFTP fields; local sources are refused (on
    ``kind``) unless the installation enables them (its operator set
    ``DEBTFLOW_SOURCES_ROOT``).
    ``schedule`` is a five-field cron expression in UTC (every 15 minutes by default). The
    secret is never sent: ``secret_env`` names the worker's environment variable that
    holds it, one set aside for the agency's source secrets (``acme-east``'s start with
    ``DEBTFLOW_SOURCE_SECRET_ACME_EAST__``: no agency can have another's read). Names are
    unique within the agency. Audited.
    """

    def __init__(self, uow: UnitOfWork, clock: Clock, source_policy: FileSourcePolicy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = source_policy

    async def execute(self, actor: Actor, command: NewFileSource) -> FileSource:
        require_admin(actor)
        kind = FileSourceKind(command.kind)
        if kind is FileSourceKind.LOCAL and not self._policy.local_sources:
            raise ValidationFailed(_LOCAL_DISABLED, field="kind")
        if kind is FileSourceKind.LOCAL and command.directory is None:
            raise ValidationFailed("a local source needs one", field="directory")
        source = FileSource(
            id=new_id(),
            agency_id=actor.agency_id,
            name=command.name,
            kind=kind,
            host=command.host,
            port=command.port,
            username=command.username,
            secret_env=command.secret_env,
            host_key=command.host_key,
            directory=command.directory or ".",
            pattern=command.pattern,
            archive_directory=command.archive_directory,
            delimiter=command.delimiter,
            column_mapping=dict(command.column_mapping),
            schedule=command.schedule,
            active=True,
            created_at=self._clock.now(),
        )
        async with self._uow as uow:
            source = _checked(source, await _agency_slug(uow, actor.agency_id))
            await uow.file_sources.add(source)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "file_source.created",
                    entity_id=source.id,
                    before=None,
                    after=source,
                    at=source.created_at,
                )
            )
            await uow.commit()
        return source


class ListFileSources:
    """The agency's file sources, active or not, by name. Agency admins only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor) -> list[FileSource]:
        require_admin(actor)
        async with self._uow as uow:
            return await uow.file_sources.list(actor.agency_id)


class GetFileSource:
    """One file source of the agency. Agency admins only; NotFound outside the agency."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: Actor, source_id: UUID) -> FileSource:
        async with self._uow as uow:
            source = await _source_in_agency(uow, actor, source_id)
        require_admin(actor)
        return source


class _ChangeFileSource:
    def __init__(self, uow: UnitOfWork, clock: Clock, source_policy: FileSourcePolicy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = source_policy

    async def _change(
        self,
        actor: Actor,
        source_id: UUID,
        action: str,
        updates: dict[str, object],
        *,
        validate: bool = True,
    ) -> FileSource:
        async with self._uow as uow:
            before = await _source_in_agency(uow, actor, source_id)
            require_admin(actor)
            after = msgspec.structs.replace(before, **updates)
            if validate:
                after = _checked(after, await _agency_slug(uow, actor.agency_id))
            if after == before:
                return before
            _check_local_allowed(self._policy, before, after)
            await uow.file_sources.update(after)
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    action,
                    entity_id=source_id,
                    before=before,
                    after=after,
                    at=self._clock.now(),
                )
            )
            await uow.commit()
        return after


class UpdateFileSource(_ChangeFileSource):
    """Change a file source: any field, validated as on creation against the result (so
    turning an ``sftp`` source into a ``local`` one clears the SFTP fields with ``null``).
    ``active`` turns polling on or off. While local sources are disabled, no source becomes
    ``local`` and a local one cannot be turned on or changed while active (only deactivated,
    or changed once inactive). Agency admins only. Audited."""

    async def execute(
        self, actor: Actor, source_id: UUID, changes: FileSourceChanges
    ) -> FileSource:
        updates = {
            name: value
            for name in changes.__struct_fields__
            if (value := getattr(changes, name)) is not UNSET
        }
        if "kind" in updates:
            updates["kind"] = FileSourceKind(updates["kind"])  # type: ignore[arg-type]
        return await self._change(actor, source_id, "file_source.updated", updates)


class DeactivateFileSource(_ChangeFileSource):
    """Stop polling a file source; it stays, with its import runs, for the record (turn it
    back on with ``active: true``). Always possible, even for a source stored before a
    rule it now breaks: its other fields are not checked again. Agency admins only.
    Audited."""

    async def execute(self, actor: Actor, source_id: UUID) -> FileSource:
        return await self._change(
            actor, source_id, "file_source.deactivated", {"active": False}, validate=False
        )


class PollFileSource:
    """Fetch a source's files now rather than at its next scheduled poll (agency admins).

    The poll is handed to the workers (:data:`POLL_FILE_SOURCE`); it downloads, backs up,
    imports and archives every waiting file, each becoming an import run. An inactive
    source is a Conflict, and so is one that cannot be polled on this installation: a
    ``local`` source while local sources are disabled or stored with a directory outside
    the agency's folder of the sources root, or an ``sftp`` source stored with a
    ``secret_env`` that is not set aside for source secrets. Audited as
    ``file_source.poll_requested``.
    """

    def __init__(
        self, uow: UnitOfWork, clock: Clock, queue: JobQueue, source_policy: FileSourcePolicy
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._queue = queue
        self._policy = source_policy

    async def execute(self, actor: Actor, source_id: UUID) -> PollRequested:
        async with self._uow as uow:
            source = await _source_in_agency(uow, actor, source_id)
            require_admin(actor)
            if not source.active:
                raise Conflict(f"the file source {source_id} is inactive")
            slug = await _agency_slug(uow, actor.agency_id)
            if (why := _why_not_pollable(source, self._policy, slug)) is not None:
                raise Conflict(f"the file source {source_id} cannot be polled: {why}")
            requested = PollRequested(
                source_id=source.id, task=POLL_FILE_SOURCE, requested_at=self._clock.now()
            )
            await uow.audit_log.add(
                audit_entry(
                    actor,
                    "file_source.poll_requested",
                    entity_id=source.id,
                    before=None,
                    after=requested,
                    at=requested.requested_at,
                )
            )
            await uow.commit()
        # After the commit: a worker quick off the mark finds the audit entry written.
        await self._queue.enqueue(POLL_FILE_SOURCE, source_id=str(source.id))
        return requested


class FetchFileSource:
    """The poll itself, run by the worker for one source (the platform, inside the source's
    agency): :class:`FetchPlacementFiles` on the source as it is now. An unknown source is
    NotFound and one that cannot be polled on this installation (see
    :class:`PollFileSource`) ValidationFailed, neither worth a retry; an inactive one is
    skipped (no runs). Source errors propagate, for the task to retry."""

    def __init__(
        self, uow: UnitOfWork, fetch: FetchPlacementFiles, source_policy: FileSourcePolicy
    ) -> None:
        self._uow = uow
        self._fetch = fetch
        self._policy = source_policy

    async def execute(self, source_id: UUID) -> list[ImportRun]:
        async with self._uow as uow:
            source = await uow.file_sources.get(source_id)
            if source is None:
                raise NotFound.of("file source", source_id)
            slug = await _agency_slug(uow, source.agency_id)
        if not source.active:
            return []
        if (why := _why_not_pollable(source, self._policy, slug)) is not None:
            raise ValidationFailed(f"the file source {source_id} cannot be polled: {why}")
        return await self._fetch.execute(Actor.system(source.agency_id), source)
