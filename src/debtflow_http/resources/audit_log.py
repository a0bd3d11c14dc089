from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from dishka import FromDishka
from litestar import Controller, get
from litestar.params import QueryParameter

from debtflow_core.actor import Actor
from debtflow_core.domain.audit import AuditEntry
from debtflow_core.pagination import Page
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from debtflow_http.auth import SECURED
from debtflow_http.openapi import errors
from debtflow_http.resources.paging import Cursor, Limit


class AuditLogController(Controller):
    path = "/v1/audit-log"
    tags = ["audit"]
    security = SECURED

    @get(
        "/",
        operation_id="queryAuditLog",
        summary="Query the audit trail",
        description=QueryAuditLog.__doc__,
        responses=errors(400, 401, 403, 422),
    )
    async def query(
        self,
        actor: FromDishka[Actor],
        use: FromDishka[QueryAuditLog],
        entity_type: Annotated[
            str | None, QueryParameter(description="account, debtor, user…")
        ] = None,
        entity_id: Annotated[UUID | None, QueryParameter()] = None,
        actor_id: Annotated[UUID | None, QueryParameter()] = None,
        since: Annotated[
            datetime | None, QueryParameter(description="Inclusive, with a UTC offset")
        ] = None,
        until: Annotated[
            datetime | None, QueryParameter(description="Exclusive, with a UTC offset")
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[AuditEntry]:
        filters = AuditFilters(
            entity_type=entity_type,
            entity_id=entity_id,
            actor_id=actor_id,
            since=since,
            until=until,
        )
        return await use.execute(actor, filters, limit=limit, cursor=cursor)
