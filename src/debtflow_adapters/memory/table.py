from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")


class Table(Generic[T]):
    """One table inside a transaction: reads see committed rows plus this transaction's own
    writes (read committed); writes stay pending until :meth:`apply`."""

    def __init__(self, committed: dict[UUID, T]) -> None:
        self._committed = committed
        self._pending: dict[UUID, T] = {}

    def get(self, id_: UUID) -> T | None:
        return self._pending.get(id_, self._committed.get(id_))

    def put(self, id_: UUID, row: T) -> None:
        self._pending[id_] = row

    def rows(self) -> Iterable[T]:
        return {**self._committed, **self._pending}.values()

    def apply(self) -> None:
        self._committed.update(self._pending)
        self._pending.clear()
