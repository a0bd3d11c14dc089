from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from debtflow_core.domain.imports import FileSource
from debtflow_core.errors import NotFound, SourceFileChanged, SourceUnavailable
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile, is_plain_name

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class _File:
    content: bytes
    modified_at: datetime


class InMemoryFileSourceReader(FileSourceReader):
    """Drop directories held in a dict, filled with :meth:`put`: for tests of embedders.

    Directories are plain strings, compared as they are; one exists once something was
    put in it (or :meth:`make_directory` made it). A file "changes" when it is put again
    while a download of it runs.
    """

    def __init__(self) -> None:
        self._directories: dict[str, dict[str, _File]] = {}

    def make_directory(self, directory: str) -> None:
        self._directories.setdefault(directory, {})

    def put(
        self, directory: str, name: str, content: bytes, *, modified_at: datetime | None = None
    ) -> None:
        """Add or replace a file (modified now unless ``modified_at`` says otherwise)."""
        self.make_directory(directory)
        self._directories[directory][name] = _File(content, modified_at or datetime.now(UTC))

    def read(self, directory: str, name: str) -> bytes | None:
        """The file's content, or ``None`` when there is no such file."""
        file = self._directories.get(directory, {}).get(name)
        return None if file is None else file.content

    def names(self, directory: str) -> list[str]:
        """Every file name in ``directory``, sorted."""
        return sorted(self._directories.get(directory, {}))

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        files = self._directory(source.directory)
        return [
            RemoteFile(name=name, size=len(file.content), modified_at=file.modified_at)
            for name, file in sorted(files.items())
            if fnmatch.fnmatchcase(name, source.pattern)
        ]

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        file = self._file(source, name)
        await asyncio.to_thread(_write, file.content, destination)
        if self._directory(source.directory).get(name) is not file:
            raise SourceFileChanged(f"{name!r} changed on the source while it was read")

    async def archive(self, source: FileSource, name: str) -> None:
        if source.archive_directory is None:
            return
        file = self._file(source, name)
        self.make_directory(source.archive_directory)
        archive = self._directories[source.archive_directory]
        target = name
        suffix = 0
        while target in archive:
            suffix += 1
            target = f"{name}.{suffix}"
        archive[target] = file
        del self._directories[source.directory][name]

    def _directory(self, directory: str) -> dict[str, _File]:
        try:
            return self._directories[directory]
        except KeyError:
            raise SourceUnavailable(f"the drop directory {directory!r} does not exist") from None

    def _file(self, source: FileSource, name: str) -> _File:
        file = self._directory(source.directory).get(name) if is_plain_name(name) else None
        if file is None:
            raise NotFound(f"the file {name!r} is not in {source.directory!r}")
        return file


def _write(content: bytes, destination: Path) -> None:
    view = memoryview(content)
    with destination.open("wb") as writer:
        for start in range(0, len(view), CHUNK_BYTES):
            writer.write(view[start : start + CHUNK_BYTES])
