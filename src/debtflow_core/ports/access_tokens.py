from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What an access token asserts: who (``sub``), where (``agency``), for how long."""

    sub: UUID
    agency: UUID
    role: str
    sid: UUID
    jti: UUID
    iat: datetime
    exp: datetime


class AccessTokenCodec(Protocol):
    """Issues and checks bearer access tokens.

    ``verify`` returns the claims of a token it issued that has not expired at ``now``, and
    raises :class:`~debtflow_core.errors.Unauthenticated` for anything else: malformed,
    tampered, signed with another key or algorithm, or expired.
    """

    def issue(self, claims: AccessClaims) -> str: ...

    def verify(self, token: str, now: datetime) -> AccessClaims: ...
