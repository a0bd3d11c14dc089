from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import require_admin
from debtflow_core.ports.audit_log import AuditPosition, AuditQuery
from debtflow_core.ports.audit_partitions import AuditPartitions
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.unit_of_work import UnitOfWork
from debtflow_core.validation import refuse_nul, require_utc


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    entity_type: str | None = None
    entity_id: UUID | None = None
    actor_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


class QueryAuditLog:
    """The agency's audit trail, newest first, by entity, actor and time range
    (``since`` inclusive, ``until`` exclusive). Agency admins only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self,
        actor: Actor,
        filters: AuditFilters = AuditFilters(),
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        require_admin(actor)
        limit = validate_limit(limit)
        if filters.entity_type is not None:
            refuse_nul(filters.entity_type, field="entity_type")
        moments: dict[str, datetime | None] = {}
        for field in ("since", "until"):
            moment = getattr(filters, field)
            moments[field] = None if moment is None else require_utc(moment, field=field)
        query = AuditQuery(
            agency_id=actor.agency_id,
            entity_type=filters.entity_type,
            entity_id=filters.entity_id,
            actor_id=filters.actor_id,
            since=moments["since"],
            until=moments["until"],
            after=decode_cursor(cursor, AuditPosition) if cursor else None,
            limit=limit + 1,
        )
        async with self._uow as uow:
            rows = await uow.audit_log.query(query)
        return paginate(rows, limit, lambda e: AuditPosition(e.occurred_at, e.id))


MINIMUM_RETENTION_MONTHS = 36
"""Audit records are kept at least three years."""


class AuditRetention(msgspec.Struct, frozen=True, kw_only=True):
    """How far ahead the audit log's partitions are made, and how long entries are kept:
    ``months`` ``None`` keeps them for ever; otherwise at least
    :data:`MINIMUM_RETENTION_MONTHS`."""

    months: int | None = None
    months_ahead: int = 3

    def __post_init__(self) -> None:
        if self.months is not None and self.months < MINIMUM_RETENTION_MONTHS:
            raise ValueError(
                f"audit entries are kept at least {MINIMUM_RETENTION_MONTHS} months,"
                f" not {self.months}"
            )


class AuditUpkeep(msgspec.Struct, frozen=True, kw_only=True):
    created: int
    """Partitions created ahead of their month."""
    detached: tuple[str, ...]
    """Partitions past the retention, detached from the log."""


class MaintainAuditPartitions:
    """Create the coming months' audit log partitions before the entries of those months
    arrive, and, when a retention is set, detach the partitions whose every entry is older
    than it: a month goes once ``retention.months`` months have passed since its last
    day, so an entry is always kept at least that many months. A scheduled platform task,
    idempotent.

    Detached rather than dropped: the entries leave the log (and its queries) but their
    table stays, to be archived (``pg_dump -t``) and dropped by an operator, or attached
    again. Deleting audit records is the one step that cannot be undone, so it is left to
    a person. Stores without partitions have nothing to do.
    """

    def __init__(
        self, partitions: AuditPartitions, clock: Clock, retention: AuditRetention
    ) -> None:
        self._partitions = partitions
        self._clock = clock
        self._retention = retention

    async def execute(self) -> AuditUpkeep:
        created = await self._partitions.create_ahead(self._retention.months_ahead)
        detached: tuple[str, ...] = ()
        if self._retention.months is not None:
            detached = await self._partitions.detach_before(
                retention_cutoff(self._clock.now(), self._retention.months)
            )
        return AuditUpkeep(created=created, detached=detached)


def retention_cutoff(now: datetime, months: int) -> datetime:
    """The start of the month ``months`` before the current one (UTC): every entry before
    it is at least ``months`` months old."""
    now = now.astimezone(UTC)
    index = now.year * 12 + now.month - 1 - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
