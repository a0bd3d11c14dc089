from __future__ import annotations

from datetime import UTC, datetime

import jwt
import msgspec

from debtflow_core.errors import Unauthenticated
from debtflow_core.ports.access_tokens import AccessClaims, AccessTokenCodec

_REQUIRED = ["sub", "agency", "role", "sid", "jti", "iat", "exp"]


class JwtAccessTokenCodec(AccessTokenCodec):
    """HS256-signed JWTs (PyJWT). Only HS256 is accepted, so ``alg: none`` and algorithm
    swaps are refused; the secret comes from the environment and is at least 32 bytes."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("a JWT secret needs at least 32 bytes")
        self._secret = secret

    def issue(self, claims: AccessClaims) -> str:
        payload = msgspec.to_builtins(claims)
        payload["iat"] = int(claims.iat.timestamp())
        payload["exp"] = int(claims.exp.timestamp())
        return jwt.encode(payload, self._secret, algorithm=self.ALGORITHM)

    def verify(self, token: str, now: datetime) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self.ALGORITHM],
                # Expiry is judged against the injected clock below, not the system time.
                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False},
            )
            payload["iat"] = datetime.fromtimestamp(payload["iat"], UTC)
            payload["exp"] = datetime.fromtimestamp(payload["exp"], UTC)
            claims = msgspec.convert(payload, AccessClaims)
        except (jwt.InvalidTokenError, msgspec.ValidationError, TypeError, ValueError) as error:
            raise Unauthenticated("the access token is not valid") from error
        if claims.exp <= now:
            raise Unauthenticated("the access token has expired")
        return claims
