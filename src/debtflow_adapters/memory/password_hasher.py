from __future__ import annotations

import hashlib
import hmac
import secrets

from debtflow_core.ports.password_hasher import PasswordHasher


class FastPasswordHasher(PasswordHasher):
    """Salted SHA-256: cheap enough for thousands of test users, far too cheap for real ones.

    Production uses :class:`debtflow_adapters.security.argon2.Argon2PasswordHasher`.
    """

    _PREFIX = "fast-sha256"

    def hash(self, password: str) -> str:
        salt = secrets.token_hex(8)
        return f"{self._PREFIX}${salt}${self._digest(salt, password)}"

    def verify(self, password_hash: str, password: str) -> bool:
        prefix, _, rest = password_hash.partition("$")
        salt, _, digest = rest.partition("$")
        if prefix != self._PREFIX or not salt or not digest:
            return False
        return hmac.compare_digest(digest, self._digest(salt, password))

    @staticmethod
    def _digest(salt: str, password: str) -> str:
        return hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()
