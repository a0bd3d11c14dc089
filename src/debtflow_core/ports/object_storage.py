from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Protocol


class ObjectStorage(Protocol):
    """Durable blobs by key: placement-file backups and exports (S3, a local directory).

    Keys are ``/``-separated relative paths. Writing an existing key replaces it.
    """

    async def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        """Upload the local file at ``source``, streamed (files may be gigabytes)."""
        ...

    async def get_file(self, key: str, destination: Path) -> None:
        """Download into ``destination``; raises :class:`~debtflow_core.errors.NotFound`."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; nothing when it is already gone."""
        ...

    async def download_url(self, key: str, *, expires_in: timedelta, file_name: str) -> str:
        """A link that downloads the object as ``file_name`` until it expires: a presigned
        URL on S3; a signed link served by the API on local storage."""
        ...
