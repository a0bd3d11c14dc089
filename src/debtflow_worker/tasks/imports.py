"""Import tasks: importing a placement file uploaded over the API."""

from __future__ import annotations

import logging
from uuid import UUID

from dishka.integrations.taskiq import FromDishka, inject
from taskiq import async_shared_broker

from debtflow_adapters.taskiq.retries import RETRY_LABEL
from debtflow_core.use_cases.imports import IMPORT_PLACEMENT_FILE, ImportQueuedRun

log = logging.getLogger("debtflow.worker")


# Retried with backoff (storage down, the database lost): a rerun resumes the run. Bad
# content never raises (it fails the run), and a missing run or backup is not retried.
@async_shared_broker.task(task_name=IMPORT_PLACEMENT_FILE, **{RETRY_LABEL: True})
@inject(patch_module=True)
async def import_placement_file(
    run_id: str, agency_id: str, use: FromDishka[ImportQueuedRun]
) -> str:
    """Import the queued run ``run_id`` of agency ``agency_id`` from its backed-up file."""
    run = await use.execute(UUID(agency_id), UUID(run_id))
    log.info(
        "import run %s: %s, %d rows read, %d failed",
        run.id,
        run.status,
        run.rows_read,
        run.rows_failed,
    )
    return str(run.status)
