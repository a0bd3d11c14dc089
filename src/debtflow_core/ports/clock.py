from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the time. ``now`` returns an aware datetime in UTC."""

    def now(self) -> datetime: ...
