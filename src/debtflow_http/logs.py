"""JSON log lines, each with the id of the request it belongs to."""

from __future__ import annotations

from typing import Any

from debtflow_adapters import logs
from debtflow_http.middleware import request_id_var


class JsonFormatter(logs.JsonFormatter):
    def context(self) -> dict[str, Any]:
        return {"request_id": request_id_var.get()}


def configure_logging(level: str) -> None:
    """Send every log record to stderr as one JSON object per line, with its request id
    (see :func:`debtflow_adapters.logs.configure_logging`)."""
    logs.configure_logging(level, JsonFormatter())
