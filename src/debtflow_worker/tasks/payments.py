"""Payment tasks: applying gateway events, recovering pending payments and refunds,
forgetting old idempotency keys. Each decodes its arguments, runs one core use case and returns a
summary for the result backend and the logs."""

from __future__ import annotations

import logging
from datetime import timedelta

from dishka.integrations.taskiq import FromDishka, inject
from taskiq import async_shared_broker

from debtflow_adapters.settings import Settings
from debtflow_adapters.taskiq.retries import RETRY_LABEL
from debtflow_core.use_cases.payments import (
    PurgeIdempotencyKeys,
    SettlePendingPayments,
    SettlePendingRefunds,
)
from debtflow_core.use_cases.webhooks import (
    APPLY_GATEWAY_EVENT,
    ApplyGatewayEvent,
    ResumeGatewayEvents,
)

log = logging.getLogger("debtflow.worker")

SETTLE_PENDING_PAYMENTS = "debtflow.settle_pending_payments"
SETTLE_PENDING_REFUNDS = "debtflow.settle_pending_refunds"
PURGE_IDEMPOTENCY_KEYS = "debtflow.purge_idempotency_keys"
RESUME_GATEWAY_EVENTS = "debtflow.resume_gateway_events"


@async_shared_broker.task(task_name=APPLY_GATEWAY_EVENT, **{RETRY_LABEL: True})
@inject(patch_module=True)
async def apply_gateway_event(event_id: str, use: FromDishka[ApplyGatewayEvent]) -> str:
    """Apply one stored gateway event. Retried with backoff: applying is idempotent."""
    outcome = await use.execute(event_id)
    log.info("applied gateway event %s: %s", event_id, outcome)
    return outcome


# Not retried: the next run, minutes later, is the retry. Cron runs in UTC.
@async_shared_broker.task(task_name=SETTLE_PENDING_PAYMENTS, schedule=[{"cron": "*/5 * * * *"}])
@inject(patch_module=True)
async def settle_pending_payments(
    settings: FromDishka[Settings], use: FromDishka[SettlePendingPayments]
) -> int:
    """Settle the payments pending for longer than ``DEBTFLOW_SETTLE_AFTER_SECONDS``."""
    settled = await use.execute(older_than=timedelta(seconds=settings.settle_after_seconds))
    log.info("settled %d pending payments", settled)
    return settled


@async_shared_broker.task(task_name=SETTLE_PENDING_REFUNDS, schedule=[{"cron": "*/5 * * * *"}])
@inject(patch_module=True)
async def settle_pending_refunds(
    settings: FromDishka[Settings], use: FromDishka[SettlePendingRefunds]
) -> int:
    """Settle the refunds pending for longer than ``DEBTFLOW_SETTLE_AFTER_SECONDS``."""
    settled = await use.execute(older_than=timedelta(seconds=settings.settle_after_seconds))
    log.info("settled %d pending refunds", settled)
    return settled


@async_shared_broker.task(task_name=PURGE_IDEMPOTENCY_KEYS, schedule=[{"cron": "17 * * * *"}])
@inject(patch_module=True)
async def purge_idempotency_keys(use: FromDishka[PurgeIdempotencyKeys]) -> int:
    """Delete the idempotency keys past their 24 hours (hourly)."""
    purged = await use.execute()
    log.info("purged %d expired idempotency keys", purged)
    return purged


@async_shared_broker.task(task_name=RESUME_GATEWAY_EVENTS, schedule=[{"cron": "*/10 * * * *"}])
@inject(patch_module=True)
async def resume_gateway_events(use: FromDishka[ResumeGatewayEvents]) -> int:
    """Hand the workers again the gateway events still unapplied ten minutes on."""
    resumed = await use.execute()
    log.info("handed %d unapplied gateway events to the workers again", resumed)
    return resumed
