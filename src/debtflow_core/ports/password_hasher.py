from __future__ import annotations

from typing import Protocol


class PasswordHasher(Protocol):
    """Turns passwords into salted one-way hashes and checks passwords against them.

    ``hash`` never returns the password itself and gives a different hash each call;
    ``verify`` returns ``False`` (never raises) for a wrong password or a malformed hash.
    """

    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...
