from __future__ import annotations

import functools
from datetime import UTC, datetime

import jwt
import msgspec

from debtflow_core.errors import Unauthenticated
from debtflow_core.ports.access_tokens import AccessClaims, AccessTokenCodec

_REQUIRED = ["sub", "agency", "role", "sid", "jti", "iat", "exp"]

_VERIFIED_TOKENS_KEPT = 4096
"""How many verified tokens a codec remembers, the most recently used: a client sends the
same token with every request of its 15 minutes, so its signature is checked once."""


class JwtAccessTokenCodec(AccessTokenCodec):
    """HS256-signed JWTs (PyJWT). Only HS256 is accepted, so ``alg: none`` and algorithm
    swaps are refused; the secret comes from the environment and is at least 32 bytes."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("a JWT secret needs at least 32 bytes")
        self._secret = secret
        # Keyed by the token's exact text: a tampered token is another key, checked afresh.
        # Only verified claims are kept (an exception is never cached); expiry is judged on
        # every call.
        self._claims = functools.lru_cache(maxsize=_VERIFIED_TOKENS_KEPT)(self._decode)

    def issue(self, claims: AccessClaims) -> str:
        payload = msgspec.to_builtins(claims)
        payload["iat"] = int(claims.iat.timestamp())
        payload["exp"] = int(claims.exp.timestamp())
        return jwt.encode(payload, self._secret, algorithm=self.ALGORITHM)

    def verify(self, token: str, now: datetime) -> AccessClaims:
        claims = self._claims(token)
        if claims.exp <= now:
            raise Unauthenticated("the access token has expired")
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self.ALGORITHM],
                # Expiry is judged in verify, against the injected clock, not the system time.
                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False},
            )
            payload["iat"] = datetime.fromtimestamp(payload["iat"], UTC)
            payload["exp"] = datetime.fromtimestamp(payload["exp"], UTC)
            return msgspec.convert(payload, AccessClaims)
        except (jwt.InvalidTokenError, msgspec.ValidationError, TypeError, ValueError) as error:
            raise Unauthenticated("the access token is not valid") from error
