"""The other end of :class:`~debtflow_adapters.local.signed_links.SignedLinks`: checking a
link the API signed and fetching the object it names."""

from __future__ import annotations

import re
from pathlib import Path

from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_core.errors import PermissionDenied
from debtflow_core.ports.object_storage import ObjectStorage

# A hex HMAC-SHA256; checked first, as comparing a non-ASCII text raises (hmac needs ASCII).
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class SignedDownloads:
    """Objects of storage, to whoever holds a valid signed link: the signature is the
    credential, so no user is involved."""

    def __init__(self, links: SignedLinks, storage: ObjectStorage) -> None:
        self._links = links
        self._storage = storage

    async def fetch(
        self, key: str, *, file_name: str, expires: int, signature: str, destination: Path
    ) -> None:
        """Download the object the link names into ``destination``.

        Raises PermissionDenied when the link is not as signed or has expired (the object
        is not even looked up), NotFound when the object is gone, StorageUnavailable when
        storage cannot be reached.
        """
        if not _SIGNATURE.fullmatch(signature) or not self._links.verify(
            key, file_name, expires, signature
        ):
            raise PermissionDenied("this download link is not valid or has expired")
        await self._storage.get_file(key, destination)
