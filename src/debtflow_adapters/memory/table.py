from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")


class Table(Generic[T]):
    """One table inside a transaction: reads see committed rows plus this transaction's own
    writes (read committed); writes and deletions stay pending until :meth:`apply`."""

    def __init__(self, committed: dict[UUID, T]) -> None:
        self._committed = committed
        self._pending: dict[UUID, T] = {}
        self._deleted: set[UUID] = set()

    def get(self, id_: UUID) -> T | None:
        if id_ in self._deleted:
            return None
        return self._pending.get(id_, self._committed.get(id_))

    def put(self, id_: UUID, row: T) -> None:
        self._deleted.discard(id_)
        self._pending[id_] = row

    def delete(self, id_: UUID) -> None:
        self._pending.pop(id_, None)
        self._deleted.add(id_)

    def rows(self) -> Iterable[T]:
        rows = {**self._committed, **self._pending}
        if not self._deleted:
            return rows.values()
        return [row for id_, row in rows.items() if id_ not in self._deleted]

    def items(self) -> Iterable[tuple[UUID, T]]:
        """The rows with their ids, for tables whose rows do not hold their id."""
        rows = {**self._committed, **self._pending}
        return [(id_, row) for id_, row in rows.items() if id_ not in self._deleted]

    def apply(self) -> None:
        self._committed.update(self._pending)
        for id_ in self._deleted:
            self._committed.pop(id_, None)
        self._pending.clear()
        self._deleted.clear()
