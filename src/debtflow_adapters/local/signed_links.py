"""Signed download links for objects the API serves itself (local and in-memory storage).

A link is ``{base_url}/v1/files/{key}?name={file_name}&expires={unix time}&signature={hex}``,
the signature an HMAC-SHA256 over the key, the file name and the expiry, so none of the
three can be changed without the secret. The route that serves the link calls
:meth:`SignedLinks.verify` and answers with :func:`content_disposition`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from urllib.parse import quote, urlencode

from debtflow_core.ports.clock import Clock
from debtflow_core.ports.object_storage import check_key, check_link_lifetime

MIN_SECRET_BYTES = 32


class SignedLinks:
    """Makes and checks signed download links with one secret (at least 32 bytes)."""

    def __init__(self, secret: bytes, *, base_url: str, clock: Clock) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"a link-signing secret needs {MIN_SECRET_BYTES} bytes or more")
        self._secret = secret
        self._base_url = base_url.rstrip("/")
        self._clock = clock

    def url(self, key: str, *, file_name: str, expires_in: timedelta) -> str:
        """A link to ``key`` that downloads as ``file_name`` for ``expires_in``."""
        check_key(key)
        expires = int(self._clock.now().timestamp()) + check_link_lifetime(expires_in)
        query = urlencode(
            {"name": file_name, "expires": expires, "signature": self.sign(key, file_name, expires)}
        )
        return f"{self._base_url}/v1/files/{quote(key)}?{query}"

    def sign(self, key: str, file_name: str, expires: int) -> str:
        """The hex signature of a link; the parts are NUL-separated, which none may hold."""
        message = "\0".join((key, file_name, str(expires))).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, file_name: str, expires: int, signature: str) -> bool:
        """Whether the link's parts are as signed and it has not expired."""
        if expires < self._clock.now().timestamp() or "\0" in file_name:
            return False
        return hmac.compare_digest(self.sign(key, file_name, expires), signature)


def content_disposition(file_name: str) -> str:
    """A ``Content-Disposition`` that downloads as ``file_name``: RFC 6266 with an ASCII
    fallback for old clients and the exact name UTF-8-encoded (RFC 8187)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in file_name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"
