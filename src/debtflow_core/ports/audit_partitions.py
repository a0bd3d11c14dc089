from __future__ import annotations

from datetime import datetime
from typing import Protocol


class AuditPartitions(Protocol):
    """The audit log's monthly partitions, where the store has them (PostgreSQL).

    A store without partitions (SQLite, the in-memory store) has nothing to create or
    detach: it answers 0 and ``()``. Each call is its own transaction, serialised with any
    other call on the same database, and idempotent.
    """

    async def create_ahead(self, months_ahead: int) -> int:
        """Create the partitions of the current month and the next ``months_ahead`` months
        that do not exist yet (the database's clock decides the current month); return how
        many were created."""
        ...

    async def detach_before(self, cutoff: datetime) -> tuple[str, ...]:
        """Detach from the audit log every monthly partition whose month ends at or
        before ``cutoff``; its rows leave the log but stay in a table of the partition's
        name. Return the names detached, oldest first."""
        ...
