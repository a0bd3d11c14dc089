from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from debtflow_adapters.local.signed_links import SignedLinks
from debtflow_core.errors import NotFound, StorageUnavailable
from debtflow_core.ports.object_storage import ObjectStorage, check_key

log = logging.getLogger("debtflow.local")

UNUSABLE = "object storage could not be used"


class LocalObjectStorage(ObjectStorage):
    """Objects as files under ``root``, the key their relative path.

    An object is written to a temporary file beside its final path, flushed to disk and
    renamed over it, so a reader sees the old object or the new one, never half of one.
    Download links are :class:`SignedLinks` for the API's ``/v1/files/`` route. The content
    type is not kept: the route serves by the file name the link carries.

    A file-system error (a full disk, a directory we may not write) is StorageUnavailable
    with a detail that names no path on this server; the path and the error are logged.
    """

    def __init__(self, root: Path, links: SignedLinks) -> None:
        self._root = root
        self._links = links

    async def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        await asyncio.to_thread(self._put_file, key, self._path(key), source)

    async def get_file(self, key: str, destination: Path) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(shutil.copyfile, path, destination)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound.of("object", key) from None
        except OSError as error:
            raise _unusable("read", error, key) from error

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._path(key).unlink, missing_ok=True)
        except OSError as error:
            raise _unusable("deletion", error, key) from error

    async def download_url(self, key: str, *, expires_in: timedelta, file_name: str) -> str:
        return self._links.url(key, file_name=file_name, expires_in=expires_in)

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _unusable("readiness check", error) from error
        if not os.access(self._root, os.W_OK | os.X_OK):
            log.error("the storage directory is not writable", extra={"path": str(self._root)})
            raise StorageUnavailable(UNUSABLE)

    def _path(self, key: str) -> Path:
        return self._root / check_key(key)

    def _put_file(self, key: str, path: Path, source: Path) -> None:
        with source.open("rb") as reader:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
                try:
                    with os.fdopen(descriptor, "wb") as writer:
                        shutil.copyfileobj(reader, writer, 1024 * 1024)
                        writer.flush()
                        os.fsync(writer.fileno())
                    os.replace(temporary, path)
                except BaseException:
                    Path(temporary).unlink(missing_ok=True)
                    raise
            except OSError as error:
                raise _unusable("write", error, key) from error


def _unusable(call: str, error: OSError, key: str | None = None) -> StorageUnavailable:
    """The OS error's message names the path: it goes to our log only."""
    fields: dict[str, object] = {"call": call, "error": type(error).__name__, "reason": str(error)}
    if key is not None:
        fields["key"] = key
    log.error("the storage directory refused the %s", call, extra=fields)
    return StorageUnavailable(UNUSABLE)
