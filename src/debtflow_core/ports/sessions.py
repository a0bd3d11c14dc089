from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

from debtflow_core.domain.session import RefreshToken, Session
from debtflow_core.domain.user import User


class PurgedSessions(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`SessionRepository.purge_ended` removed."""

    sessions: int
    refresh_tokens: int


class SessionRepository(Protocol):
    """Sign-in sessions and their refresh tokens."""

    async def add(self, session: Session) -> None: ...

    async def get(self, id_: UUID) -> Session | None: ...

    async def get_with_user(self, id_: UUID) -> tuple[Session, User] | None:
        """The session and the user it belongs to, read together (one query where the
        store allows): what every authenticated request checks. ``None`` if there is no
        such session."""
        ...

    async def revoke(self, id_: UUID, at: datetime) -> bool:
        """Mark the session revoked, if it is not already. ``True`` if this call revoked
        it (what is audited); ``False`` if it was revoked already or does not exist."""
        ...

    async def add_token(self, token: RefreshToken) -> None: ...

    async def get_token(self, token_hash: str) -> RefreshToken | None: ...

    async def use_token(self, id_: UUID, at: datetime) -> bool:
        """Mark an unused token used, atomically. ``False`` if it had been used already,
        so that of two concurrent refreshes with one token exactly one wins."""
        ...

    async def purge_ended(self, now: datetime) -> PurgedSessions:
        """Delete the refresh tokens expired by ``now`` and every token of a revoked
        session, then the sessions left without a token (revoked, or all tokens expired).
        A used token that has not expired yet is kept: presenting it again must still
        revoke its session. Part of the unit of work: nothing is gone until it commits."""
        ...
