from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    """Hands work to the background workers by task name, with JSON-ready arguments.

    ``enqueue`` returns once the job is accepted; the job runs later, maybe more than once
    (at-least-once delivery), so every task is idempotent.
    """

    async def enqueue(self, task: str, **arguments: str | int | None) -> None: ...
