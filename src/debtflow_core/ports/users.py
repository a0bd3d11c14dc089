from __future__ import annotations

from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.user import Role, User


class UserPosition(msgspec.Struct, frozen=True):
    """Where a page of users ended, in their order: by email, which no two users share."""

    email: str


class UserQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Users of one agency by email, compared by code point (as Python compares strings),
    whatever the database's collation. ``role`` keeps only users with that role, ``active``
    only the active users (``True``) or only the deactivated ones (``False``)."""

    agency_id: UUID
    role: Role | None = None
    active: bool | None = None
    after: UserPosition | None = None
    limit: int = 50


class UserRepository(Protocol):
    """Users. Emails are unique across the platform: ``add`` raises Conflict for a taken one,
    with :data:`~debtflow_core.domain.user.EMAIL_TAKEN` as its message."""

    async def add(self, user: User) -> None: ...

    async def get(self, id_: UUID) -> User | None: ...

    async def get_by_email(self, email: str) -> User | None: ...

    async def list(self, query: UserQuery) -> list[User]:
        """Up to ``query.limit`` users after ``query.after``, in ``query``'s order."""
        ...

    async def update(self, user: User) -> None:
        """Save role, name, active flag and password hash. Read the user in the same
        transaction under its agency's lock
        (:meth:`~debtflow_core.ports.agencies.AgencyRepository.lock`), or this writes back
        what another transaction just changed."""
        ...
