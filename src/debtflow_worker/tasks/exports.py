"""Export tasks: computing and writing a requested export, queueing the nightly ones,
failing those whose job was lost, and purging those past retention. Each decodes its
arguments, runs one core use case and returns a summary for the result backend and the
logs."""

from __future__ import annotations

import logging

from dishka.integrations.taskiq import FromDishka, inject
from taskiq import async_shared_broker

from debtflow_adapters.taskiq.retries import GIVE_UP_LABEL, RETRY_LABEL
from debtflow_core.use_cases.exports import (
    RUN_EXPORT,
    AbandonExport,
    FailStalledExports,
    PurgeExpiredExports,
    QueueNightlyExports,
    RunExport,
)
from debtflow_worker.arguments import count_argument, id_argument

log = logging.getLogger("debtflow.worker")

QUEUE_NIGHTLY_EXPORTS = "debtflow.queue_nightly_exports"
PURGE_EXPORTS = "debtflow.purge_exports"
FAIL_STALLED_EXPORTS = "debtflow.fail_stalled_exports"
ABANDON_EXPORT = "debtflow.abandon_export"


# Retried with backoff (storage down, the database lost): a rerun writes the file again
# over the same key; a finished export is left as it is, a missing one is not retried.
# When the last retry fails too, debtflow.abandon_export fails the export.
@async_shared_broker.task(
    task_name=RUN_EXPORT, **{RETRY_LABEL: True, GIVE_UP_LABEL: ABANDON_EXPORT}
)
@inject(patch_module=True)
async def run_export(export_id: str, agency_id: str, use: FromDishka[RunExport]) -> str:
    """Compute the export ``export_id`` of agency ``agency_id`` and store its CSV file."""
    export = await use.execute(
        id_argument("agency_id", agency_id), id_argument("export_id", export_id)
    )
    log.info("export %s (%s): %s, %s rows", export.id, export.kind, export.status, export.rows)
    return str(export.status)


# Sent by the retry policy when debtflow.run_export gave up. Not retried: the export is
# then failed for good by FailStalledExports a day on.
@async_shared_broker.task(task_name=ABANDON_EXPORT)
@inject(patch_module=True)
async def abandon_export(
    export_id: str, agency_id: str, attempts: int, use: FromDishka[AbandonExport]
) -> str:
    """Fail the export ``export_id`` of agency ``agency_id`` after ``attempts`` failed runs."""
    export = await use.execute(
        id_argument("agency_id", agency_id),
        id_argument("export_id", export_id),
        count_argument("attempts", attempts),
    )
    log.warning("export %s abandoned after %d attempts: %s", export.id, attempts, export.status)
    return str(export.status)


# 00:30 UTC, once the previous day is over. Not retried: a rerun in the same night queues
# nothing twice, and tomorrow's run is another night.
@async_shared_broker.task(task_name=QUEUE_NIGHTLY_EXPORTS, schedule=[{"cron": "30 0 * * *"}])
@inject(patch_module=True)
async def queue_nightly_exports(use: FromDishka[QueueNightlyExports]) -> int:
    """Queue every agency's nightly exports (``DEBTFLOW_NIGHTLY_EXPORTS``) of yesterday."""
    queued = await use.execute()
    log.info("queued %d nightly exports", queued)
    return queued


@async_shared_broker.task(task_name=PURGE_EXPORTS, schedule=[{"cron": "45 3 * * *"}])
@inject(patch_module=True)
async def purge_exports(use: FromDishka[PurgeExpiredExports]) -> int:
    """Delete the exports past ``DEBTFLOW_EXPORT_RETENTION_DAYS``, files first (daily)."""
    purged = await use.execute()
    log.info("purged %d expired exports", purged)
    return purged


@async_shared_broker.task(task_name=FAIL_STALLED_EXPORTS, schedule=[{"cron": "50 * * * *"}])
@inject(patch_module=True)
async def fail_stalled_exports(use: FromDishka[FailStalledExports]) -> int:
    """Fail the exports still unfinished a day after their request (hourly)."""
    failed = await use.execute()
    if failed:
        log.warning("failed %d exports whose job was lost", failed)
    return failed
