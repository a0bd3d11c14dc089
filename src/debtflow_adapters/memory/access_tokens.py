from __future__ import annotations

import secrets
from datetime import datetime

from debtflow_core.errors import Unauthenticated
from debtflow_core.ports.access_tokens import AccessClaims, AccessTokenCodec


class InMemoryAccessTokens(AccessTokenCodec):
    """Opaque random tokens remembered in this process, instead of signed JWTs.

    For tests and single-process embedding; tokens die with the process.
    """

    def __init__(self) -> None:
        self._claims: dict[str, AccessClaims] = {}

    def issue(self, claims: AccessClaims) -> str:
        token = secrets.token_urlsafe(24)
        self._claims[token] = claims
        return token

    def verify(self, token: str, now: datetime) -> AccessClaims:
        claims = self._claims.get(token)
        if claims is None:
            raise Unauthenticated("the access token is not valid")
        if claims.exp <= now:
            raise Unauthenticated("the access token has expired")
        return claims
