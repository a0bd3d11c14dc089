from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_core.errors import NotFound
from debtflow_core.ports.object_storage import ObjectStorage, check_key


class InMemoryObjectStorage(ObjectStorage):
    """Objects in a dict, gone with the process: for tests of embedders.

    Download links are :class:`~debtflow_adapters.local.SignedLinks`, as for local storage:
    the API's ``/v1/files/`` route serves them through :meth:`get_file`.
    """

    def __init__(self, links: SignedLinks) -> None:
        self._links = links
        self._objects: dict[str, tuple[bytes, str]] = {}

    async def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        check_key(key)
        self._objects[key] = (await asyncio.to_thread(source.read_bytes), content_type)

    async def get_file(self, key: str, destination: Path) -> None:
        stored = self._objects.get(check_key(key))
        if stored is None:
            raise NotFound.of("object", key)
        await asyncio.to_thread(destination.write_bytes, stored[0])

    async def exists(self, key: str) -> bool:
        return check_key(key) in self._objects

    async def delete(self, key: str) -> None:
        self._objects.pop(check_key(key), None)

    async def download_url(self, key: str, *, expires_in: timedelta, file_name: str) -> str:
        return self._links.url(key, file_name=file_name, expires_in=expires_in)

    async def check(self) -> None:
        """In memory: as available as the process itself."""
