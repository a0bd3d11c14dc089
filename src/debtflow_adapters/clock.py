from __future__ import annotations

from datetime import UTC, datetime

from debtflow_core.ports.clock import Clock


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)
