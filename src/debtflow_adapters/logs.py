"""JSON log lines, one object per line on stderr, for every DebtFlow process: the API, the
worker and the scheduler. A line logged while a request is answered names it
(``request_id``); one logged while a background task runs names the task (``task_id``) and
the request that queued it, if one did (see :mod:`debtflow_adapters.taskiq.log_context`)."""

from __future__ import annotations

import contextvars
import logging
from datetime import UTC, datetime
from typing import Any

import msgspec

# Attributes every LogRecord has; anything else on a record came from ``extra=``, except
# uvicorn's terminal-coloured copy of its message.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
"""The id of the HTTP request being answered, or of the one that queued the running task."""

task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)
"""The id of the background task running (its taskiq message's)."""


class JsonFormatter(logging.Formatter):
    def context(self) -> dict[str, Any]:
        """Fields a line carries after its message: the ids of the request and the task it
        belongs to, those that it has."""
        ids = {"request_id": request_id_var.get(), "task_id": task_id_var.get()}
        return {name: id_ for name, id_ in ids.items() if id_ is not None}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self.context(),
        }
        line.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line, enc_hook=str).decode()


def configure_logging(level: str, formatter: logging.Formatter | None = None) -> None:
    """Send every log record to stderr as one JSON object per line.

    ``debug`` applies to DebtFlow's own loggers only: libraries log data at DEBUG (aiosqlite
    every statement with its parameters — emails, names, hashes; botocore and paramiko
    their requests), which must not reach the logs, so they stay at ``info`` and above.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(formatter or JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level.upper()), logging.INFO))
    logging.getLogger("debtflow").setLevel(level.upper())
    # The Stripe SDK logs request bodies (payment-method ids among them) at DEBUG.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = name != "uvicorn.access"
