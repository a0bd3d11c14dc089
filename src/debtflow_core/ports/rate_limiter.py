from __future__ import annotations

from datetime import timedelta
from typing import Protocol


class RateLimiter(Protocol):
    """Counts attempts per key in fixed windows.

    ``hit`` records one attempt and returns how many seconds the caller must wait before
    trying again: 0 while the key has made at most ``limit`` attempts in the current window.
    Counters are shared by every process that uses the same backing store.
    """

    async def hit(self, key: str, *, limit: int, window: timedelta) -> int: ...
