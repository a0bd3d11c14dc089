"""One FileSourceReader for every kind of source: each call goes to the reader of the
source's kind (SFTP, a local directory)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from debtflow_core.domain.imports import FileSource, FileSourceKind
from debtflow_core.errors import SourceUnavailable
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile


class FileSourceReaders(FileSourceReader):
    """Sends each call to the reader of ``source.kind``; a kind without one (local
    sources when no sources root is configured) is a SourceUnavailable that says so."""

    def __init__(self, readers: Mapping[FileSourceKind, FileSourceReader]) -> None:
        self._readers = dict(readers)

    def _reader(self, source: FileSource) -> FileSourceReader:
        reader = self._readers.get(source.kind)
        if reader is None:
            raise SourceUnavailable(
                f"{source.kind} file sources are not enabled on this installation"
                + (" (set DEBTFLOW_SOURCES_ROOT)" if source.kind is FileSourceKind.LOCAL else "")
            )
        return reader

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        return await self._reader(source).list_files(source)

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        await self._reader(source).download(source, name, destination)

    async def archive(self, source: FileSource, name: str) -> None:
        await self._reader(source).archive(source, name)
