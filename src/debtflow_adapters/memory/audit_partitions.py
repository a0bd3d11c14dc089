from __future__ import annotations

from datetime import datetime

from debtflow_core.ports.audit_partitions import AuditPartitions


class InMemoryAuditPartitions(AuditPartitions):
    """The in-memory store keeps the audit log in one table: there are no partitions to
    create or detach, and its entries live only as long as the process anyway."""

    async def create_ahead(self, months_ahead: int) -> int:
        return 0

    async def detach_before(self, cutoff: datetime) -> tuple[str, ...]:
        return ()
