from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    """Hands work to the background workers by task name, with JSON-ready arguments.

    ``enqueue`` returns once the job is accepted; the job runs later, maybe more than once,
    so every task is idempotent. A job may also be lost (a worker killed mid-job): what must
    happen is swept up by a scheduled task, not left to the queue.
    """

    async def enqueue(self, task: str, **arguments: str | int | None) -> None: ...
