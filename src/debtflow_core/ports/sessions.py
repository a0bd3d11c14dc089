from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from debtflow_core.domain.session import RefreshToken, Session
from debtflow_core.domain.user import User


class SessionRepository(Protocol):
    """Sign-in sessions and their refresh tokens."""

    async def add(self, session: Session) -> None: ...

    async def get(self, id_: UUID) -> Session | None: ...

    async def get_with_user(self, id_: UUID) -> tuple[Session, User] | None:
        """The session and the user it belongs to, read together (one query where the
        store allows): what every authenticated request checks. ``None`` if there is no
        such session."""
        ...

    async def revoke(self, id_: UUID, at: datetime) -> None:
        """Mark the session revoked (if it is not already)."""
        ...

    async def add_token(self, token: RefreshToken) -> None: ...

    async def get_token(self, token_hash: str) -> RefreshToken | None: ...

    async def use_token(self, id_: UUID, at: datetime) -> bool:
        """Mark an unused token used, atomically. ``False`` if it had been used already,
        so that of two concurrent refreshes with one token exactly one wins."""
        ...
