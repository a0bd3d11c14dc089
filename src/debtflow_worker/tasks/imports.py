"""Import tasks: polling a file source, importing a placement file uploaded over the API,
and queueing again the uploads whose job was lost. Each decodes its arguments, runs one
core use case and returns a summary for the result backend and the logs."""

from __future__ import annotations

import logging

from dishka.integrations.taskiq import FromDishka, inject
from taskiq import async_shared_broker

from debtflow_adapters.taskiq.retries import RETRY_LABEL
from debtflow_core.use_cases.file_sources import POLL_FILE_SOURCE, FetchFileSource
from debtflow_core.use_cases.imports import (
    IMPORT_PLACEMENT_FILE,
    ImportQueuedRun,
    ResumeStalledImports,
)
from debtflow_worker.arguments import id_argument

log = logging.getLogger("debtflow.worker")

RESUME_STALLED_IMPORTS = "debtflow.resume_stalled_imports"


# Retried with backoff: a source that is down or refuses us (SourceUnavailable) may answer
# later, and a rerun is safe: a file imported before the error is archived or, if not yet,
# found imported by its hash; a file that fails to import ends as a failed run and never
# stops the files after it.
@async_shared_broker.task(task_name=POLL_FILE_SOURCE, **{RETRY_LABEL: True})
@inject(patch_module=True)
async def poll_file_source(source_id: str, use: FromDishka[FetchFileSource]) -> dict[str, str]:
    """Fetch and import every file waiting in one source; the status of each file's run
    by run id (a file whose content was imported before gives that earlier run)."""
    runs = await use.execute(id_argument("source_id", source_id))
    log.info("polled file source %s: %d files", source_id, len(runs))
    return {str(run.id): str(run.status) for run in runs}


# Retried with backoff (storage down, the database lost): a rerun resumes the run. Bad
# content never raises (it fails the run); a missing run or backup, or a malformed id, is
# not retried.
@async_shared_broker.task(task_name=IMPORT_PLACEMENT_FILE, **{RETRY_LABEL: True})
@inject(patch_module=True)
async def import_placement_file(
    run_id: str, agency_id: str, use: FromDishka[ImportQueuedRun]
) -> str:
    """Import the queued run ``run_id`` of agency ``agency_id`` from its backed-up file."""
    run = await use.execute(id_argument("agency_id", agency_id), id_argument("run_id", run_id))
    log.info(
        "import run %s: %s, %d rows read, %d failed",
        run.id,
        run.status,
        run.rows_read,
        run.rows_failed,
    )
    return str(run.status)


# Not retried: the next run, minutes later, is the retry. Cron runs in UTC.
@async_shared_broker.task(task_name=RESUME_STALLED_IMPORTS, schedule=[{"cron": "*/10 * * * *"}])
@inject(patch_module=True)
async def resume_stalled_imports(use: FromDishka[ResumeStalledImports]) -> int:
    """Queue again the uploaded runs whose job was lost (queued or running for 30 minutes)."""
    queued = await use.execute()
    log.info("queued %d stalled import runs again", queued)
    return queued
