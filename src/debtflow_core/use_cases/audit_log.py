from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from debtflow_core.actor import Actor
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.pagination import Page, decode_cursor, paginate, validate_limit
from debtflow_core.policy import require_admin
from debtflow_core.ports.audit_log import AuditPosition, AuditQuery
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
