"""The order of a run's placement batches when their writes overlap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID


class BatchOrder:
    """Per attempt at an import run, each write's turn: after the write begun before it
    has ended.

    ``async with order.turn(run_id, attempt) as my_turn`` must be the first thing a write
    does (it takes its place in line before anything can interleave); ``await my_turn()``
    returns once the write before has committed, and raises if it did not, so a batch is
    never written after a gap. Whatever a write does before awaiting its turn (staging its
    rows, say) overlaps the write before. Attempts do not wait on each other: a new one
    goes ahead, and the run's fence refuses the old one's writes.
    """

    def __init__(self) -> None:
        # Per attempt, the last write's future: True once it committed, False if it did not.
        self._last: dict[tuple[UUID, int], asyncio.Future[bool]] = {}

    @contextlib.asynccontextmanager
    async def turn(
        self, run_id: UUID, attempt: int
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        key = (run_id, attempt)
        before = self._last.get(key)
        mine = self._last[key] = asyncio.get_running_loop().create_future()

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
            if self._last.get(key) is mine:
                del self._last[key]
