"""Minimal in-memory FileSourceReader and ObjectStorage for the core's unit tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from debtflow_core.domain.imports import FileSource
from debtflow_core.errors import NotFound, SourceUnavailable, StorageUnavailable
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile
from debtflow_core.ports.object_storage import ObjectStorage
from tests.support.imports import T0

SETTLED = T0 - timedelta(hours=1)
"""When the fake's files were last modified, unless ``modified`` says otherwise: long
enough before T0 for a poll to take them."""


class FakeFileSource(FileSourceReader):
    """A drop directory of ``files`` (name to bytes); archived files move to ``archived``
    (when the source has an archive directory).
    ``down`` makes every call raise SourceUnavailable. ``modified`` gives a file another
    modification time than :data:`SETTLED`; the names in ``vanished`` are listed, but gone
    by the time they are downloaded. The files in ``unreadable`` cannot be downloaded, those
    in ``unarchivable`` cannot be archived (SourceUnavailable for them alone)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.archived: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}
        self.vanished: set[str] = set()
        self.unreadable: set[str] = set()
        self.unarchivable: set[str] = set()
        self.downloads: list[str] = []
        self.down = False

    def _reach(self) -> None:
        if self.down:
            raise SourceUnavailable("the SFTP server did not answer")

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        self._reach()
        listed = self.files | dict.fromkeys(self.vanished, b"")
        return [
            RemoteFile(name=name, size=len(data), modified_at=self.modified.get(name, SETTLED))
            for name, data in sorted(listed.items())
        ]

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        self._reach()
        self.downloads.append(name)
        if name not in self.files:
            raise NotFound(f"the file {name!r} is not on the source")
        if name in self.unreadable:
            raise SourceUnavailable(f"the source does not let us read {name!r}")
        destination.write_bytes(self.files[name])

    async def archive(self, source: FileSource, name: str) -> None:
        self._reach()
        if source.archive_directory is None:
            return
        if name not in self.files:
            raise NotFound(f"the file {name!r} is not on the source")
        if name in self.unarchivable:
            raise SourceUnavailable(f"cannot archive {name!r}: Permission denied")
        self.archived[name] = self.files.pop(name)


class FakeObjectStorage(ObjectStorage):
    """Objects kept as bytes by key; ``log`` records the order of the calls. ``down`` makes
    writes and the readiness check raise StorageUnavailable."""

    def __init__(self, log: list[str]) -> None:
        self.objects: dict[str, bytes] = {}
        self.down = False
        self._log = log

    async def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        await self.check()
        self._log.append(f"put {key}")
        self.objects[key] = source.read_bytes()

    async def get_file(self, key: str, destination: Path) -> None:
        if key not in self.objects:
            raise NotFound.of("object", key)
        destination.write_bytes(self.objects[key])

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def download_url(self, key: str, *, expires_in: timedelta, file_name: str) -> str:
        return f"memory://{key}"

    async def check(self) -> None:
        if self.down:
            raise StorageUnavailable("object storage could not be reached")
