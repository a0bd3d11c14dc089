from __future__ import annotations

from typing import Protocol
from uuid import UUID

from debtflow_core.domain.user import User


class UserRepository(Protocol):
    """Users. Emails are unique across the platform: ``add`` raises Conflict for a taken one,
    with :data:`~debtflow_core.domain.user.EMAIL_TAKEN` as its message."""

    async def add(self, user: User) -> None: ...

    async def get(self, id_: UUID) -> User | None: ...

    async def get_by_email(self, email: str) -> User | None: ...

    async def list(self, agency_id: UUID) -> list[User]:
        """The agency's users ordered by email."""
        ...

    async def update(self, user: User) -> None:
        """Save role, name, active flag and password hash. Read the user in the same
        transaction under its agency's lock
        (:meth:`~debtflow_core.ports.agencies.AgencyRepository.lock`), or this writes back
        what another transaction just changed."""
        ...
