from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One sign-in: the family of refresh tokens rotated from one login.

    Access tokens name their session, so revoking it (logout, or a reused refresh token)
    stops every token of the family at once.
    """

    id: UUID
    agency_id: UUID
    user_id: UUID
    created_at: datetime
    revoked_at: datetime | None


class RefreshToken(msgspec.Struct, frozen=True, kw_only=True):
    """A single-use refresh token. Only its SHA-256 is stored; the token itself is shown once."""

    id: UUID
    session_id: UUID
    token_hash: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None
