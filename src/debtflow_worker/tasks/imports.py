"""Import tasks: polling a file source. Each decodes its arguments, runs one core use case
and returns a summary for the result backend and the logs."""

from __future__ import annotations

import logging
import uuid

from dishka.integrations.taskiq import FromDishka, inject
from taskiq import async_shared_broker

from debtflow_adapters.taskiq.retries import RETRY_LABEL
from debtflow_core.errors import ValidationFailed
from debtflow_core.use_cases.file_sources import POLL_FILE_SOURCE, FetchFileSource

log = logging.getLogger("debtflow.worker")


# Retried with backoff: a source that is down or refuses us (SourceUnavailable) may answer
# later, and a rerun is safe: a file imported before the error is archived or, if not yet,
# found imported by its hash; a file that fails to import ends as a failed run and never
# stops the files after it.
@async_shared_broker.task(task_name=POLL_FILE_SOURCE, **{RETRY_LABEL: True})
@inject(patch_module=True)
async def poll_file_source(source_id: str, use: FromDishka[FetchFileSource]) -> dict[str, str]:
    """Fetch and import every file waiting in one source; the status of each file's run
    by run id (a file whose content was imported before gives that earlier run)."""
    try:
        id_ = uuid.UUID(source_id)
    except ValueError:
        raise ValidationFailed("not a file source id", field="source_id") from None
    runs = await use.execute(id_)
    log.info("polled file source %s: %d files", source_id, len(runs))
    return {str(run.id): str(run.status) for run in runs}
