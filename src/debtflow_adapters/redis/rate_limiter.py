from __future__ import annotations

import logging
import math
from datetime import timedelta

import redis.asyncio as redis

from debtflow_core.ports.clock import Clock
from debtflow_core.ports.rate_limiter import RateLimiter

log = logging.getLogger("debtflow.redis")


class RedisRateLimiter(RateLimiter):
    """Fixed-window counters in Redis, shared by every API process.

    One key per window (``<prefix><key>:<window start>``), incremented and given a TTL in
    one round trip, so stale windows expire on their own. If Redis fails, attempts are let
    through with a warning: an outage of the counters must not lock every user out (the
    readiness check reports Redis down meanwhile).
    """

    def __init__(self, client: redis.Redis, clock: Clock, *, prefix: str = "debtflow:rl:") -> None:
        self._client = client
        self._clock = clock
        self._prefix = prefix

    async def hit(self, key: str, *, limit: int, window: timedelta) -> int:
        now = self._clock.now().timestamp()
        length = window.total_seconds()
        start = now - now % length
        name = f"{self._prefix}{key}:{int(start)}"
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(name).expire(name, math.ceil(length)).execute()
        except redis.RedisError as error:
            log.warning("rate-limit store unavailable", extra={"error": type(error).__name__})
            return 0
        return 0 if count <= limit else math.ceil(start + length - now)
