from __future__ import annotations

from debtflow_core.ports.job_queue import JobQueue


class InMemoryJobQueue(JobQueue):
    """Keeps enqueued jobs in a list instead of running them: a test (or an embedding
    tool) inspects ``jobs`` and runs what it wants, when it wants."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, dict[str, str | int | None]]] = []

    async def enqueue(self, task: str, **arguments: str | int | None) -> None:
        self.jobs.append((task, arguments))
