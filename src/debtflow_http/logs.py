"""JSON log lines, each with the id of the request it belongs to."""

from __future__ import annotations

from typing import Any

from debtflow_adapters import logs


class JsonFormatter(logs.JsonFormatter):
    def context(self) -> dict[str, Any]:
        # Every line of the API has a request_id, null outside a request (startup, the
        # schedule); a task run in this process adds its own.
        return {"request_id": None, **super().context()}


def configure_logging(level: str) -> None:
    """Send every log record to stderr as one JSON object per line, with its request id
    (see :func:`debtflow_adapters.logs.configure_logging`)."""
    logs.configure_logging(level, JsonFormatter())
