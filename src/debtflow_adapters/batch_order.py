"""The order of a run's placement batches when their writes overlap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID


class BatchOrder:
    """Per import run, each write's turn: after the write called before it has ended.

    ``async with order.turn(run_id) as my_turn`` must be the first thing a write does
    (it takes the place in line before anything can interleave); ``await my_turn()``
    returns once the write before has committed, and raises if it did not, so a batch is
    never written after a gap. Whatever a write does before awaiting its turn (staging its
    rows, say) overlaps the write before.
    """

    def __init__(self) -> None:
        # Per run, the last write's future: True once it committed, False if it did not.
        self._last: dict[UUID, asyncio.Future[bool]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, run_id: UUID) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        before = self._last.get(run_id)
        mine = self._last[run_id] = asyncio.get_running_loop().create_future()

        async def my_turn() -> None:
            # Shielded: a write cancelled while it waits must not cancel the one before.
            if before is not None and not await asyncio.shield(before):
                raise RuntimeError("the import's batch before this one was not written")

        written = False
        try:
            yield my_turn
            written = True
        finally:
            mine.set_result(written)
            if self._last.get(run_id) is mine:
                del self._last[run_id]
