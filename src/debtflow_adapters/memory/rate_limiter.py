from __future__ import annotations

import math
from datetime import timedelta

from debtflow_core.ports.clock import Clock
from debtflow_core.ports.rate_limiter import RateLimiter


class InMemoryRateLimiter(RateLimiter):
    """Fixed-window counters in this process: for one process, or for tests."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, *, limit: int, window: timedelta) -> int:
        now = self._clock.now().timestamp()
        length = window.total_seconds()
        start = now - now % length
        started, count = self._windows.get(key, (start, 0))
        count = count + 1 if started == start else 1
        self._windows[key] = (start, count)
        return 0 if count <= limit else math.ceil(start + length - now)
