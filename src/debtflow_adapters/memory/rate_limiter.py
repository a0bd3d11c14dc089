from __future__ import annotations

import math
from datetime import timedelta

from debtflow_core.ports.clock import Clock
from debtflow_core.ports.rate_limiter import RateLimiter


class InMemoryRateLimiter(RateLimiter):
    """Fixed-window counters in this process: for one process, or for tests."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int, float]] = {}  # start, count, end
        self._swept_at = 0.0

    async def hit(self, key: str, *, limit: int, window: timedelta) -> int:
        now = self._clock.now().timestamp()
        self._sweep(now)
        length = window.total_seconds()
        start = now - now % length
        started, count, _ = self._windows.get(key, (start, 0, 0.0))
        count = count + 1 if started == start else 1
        self._windows[key] = (start, count, start + length)
        return 0 if count <= limit else math.ceil(start + length - now)

    def _sweep(self, now: float) -> None:
        """Forget the windows that have ended, once a minute: every caller leaves a key,
        and without this they would pile up for as long as the process runs."""
        if now - self._swept_at < 60:
            return
        self._swept_at = now
        self._windows = {key: kept for key, kept in self._windows.items() if kept[2] > now}
