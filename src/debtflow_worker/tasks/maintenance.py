"""Upkeep tasks: forgetting ended sign-in sessions, the audit log's partitions. Each runs
one core use case on a daily schedule; running one twice changes nothing the second time.
Not retried: tomorrow's run is the retry. Cron runs in UTC."""

from __future__ import annotations

import logging

from dishka.integrations.taskiq import FromDishka, inject
from taskiq import async_shared_broker

from debtflow_core.use_cases.audit_log import MaintainAuditPartitions
from debtflow_core.use_cases.auth import PurgeSessions

log = logging.getLogger("debtflow.worker")

PURGE_SESSIONS = "debtflow.purge_sessions"
MAINTAIN_AUDIT_PARTITIONS = "debtflow.maintain_audit_partitions"


@async_shared_broker.task(task_name=PURGE_SESSIONS, schedule=[{"cron": "23 3 * * *"}])
@inject(patch_module=True)
async def purge_sessions(use: FromDishka[PurgeSessions]) -> dict[str, int]:
    """Delete expired refresh tokens and ended sessions (daily)."""
    purged = await use.execute()
    log.info(
        "purged %d ended sessions and %d refresh tokens", purged.sessions, purged.refresh_tokens
    )
    return {"sessions": purged.sessions, "refresh_tokens": purged.refresh_tokens}


@async_shared_broker.task(task_name=MAINTAIN_AUDIT_PARTITIONS, schedule=[{"cron": "41 2 * * *"}])
@inject(patch_module=True)
async def maintain_audit_partitions(use: FromDishka[MaintainAuditPartitions]) -> dict[str, object]:
    """Create the coming months' audit log partitions; detach those past the retention
    (daily: a missed day still leaves three months of partitions ahead)."""
    upkeep = await use.execute()
    log.info(
        "created %d audit log partitions, detached %d: %s",
        upkeep.created,
        len(upkeep.detached),
        ", ".join(upkeep.detached) or "none",
    )
    return {"created": upkeep.created, "detached": list(upkeep.detached)}
