from __future__ import annotations

from datetime import UTC, datetime, timedelta

from debtflow_core.errors import ValidationFailed
from debtflow_core.ports.clock import Clock


class FixedClock(Clock):
    """A clock that only moves when told to: deterministic timestamps for tests.

    Each ``now`` call returns the current instant and then advances it by ``tick``
    (zero by default), so successive events can be given distinct, ordered times.
    """

    def __init__(self, start: datetime, *, tick: timedelta = timedelta(0)) -> None:
        if start.tzinfo is None:
            raise ValidationFailed("a clock needs an aware datetime", field="start")
        self._now = start.astimezone(UTC)
        self._tick = tick

    def now(self) -> datetime:
        now = self._now
        self._now += self._tick
        return now

    def advance(self, delta: timedelta) -> None:
        self._now += delta
