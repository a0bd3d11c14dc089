from __future__ import annotations

import asyncio
import fnmatch
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from debtflow_core.domain.imports import FileSource
from debtflow_core.errors import NotFound, SourceFileChanged, SourceUnavailable
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile, is_plain_name

CHUNK_BYTES = 1024 * 1024


class LocalFileSourceReader(FileSourceReader):
    """Reads drop directories on this machine, all inside one ``root`` directory.

    A source's ``directory`` and ``archive_directory`` are paths inside ``root``; a leading
    ``/`` means ``root`` itself. A path that leads out of ``root`` (through ``..`` or a
    symbolic link) is refused with SourceUnavailable, so that an agency's settings cannot
    read the rest of the machine. A file is "changed" when its inode, size or
    modification time (in nanoseconds) differ after the download from before it.
    """

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        return await asyncio.to_thread(self._list_files, source)

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        await asyncio.to_thread(self._download, source, name, destination)

    async def archive(self, source: FileSource, name: str) -> None:
        if source.archive_directory is not None:
            await asyncio.to_thread(self._archive, source, name, source.archive_directory)

    def _list_files(self, source: FileSource) -> list[RemoteFile]:
        directory = self._inside_root(source.directory)
        try:
            entries = list(os.scandir(directory))
        except OSError as error:
            raise SourceUnavailable(
                f"cannot list the drop directory {source.directory!r}: {error.strerror}"
            ) from None
        files = []
        for entry in entries:
            if not fnmatch.fnmatchcase(entry.name, source.pattern):
                continue
            try:
                attributes = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(attributes.st_mode):
                modified_at = datetime.fromtimestamp(attributes.st_mtime, UTC)
                files.append(
                    RemoteFile(name=entry.name, size=attributes.st_size, modified_at=modified_at)
                )
        return sorted(files, key=lambda file: file.name)

    def _download(self, source: FileSource, name: str, destination: Path) -> None:
        path = self._file(source, name)
        try:
            before = _signature(path.stat())
            reader = path.open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"the file {name!r} is not in {source.directory!r}") from None
        except PermissionError:
            raise SourceUnavailable(f"we may not read {name!r} in {source.directory!r}") from None
        with reader, destination.open("wb") as writer:
            opened = _signature(os.fstat(reader.fileno()))
            written = 0
            while chunk := reader.read(CHUNK_BYTES):
                writer.write(chunk)
                written += len(chunk)
        try:
            after = _signature(path.stat())
        except FileNotFoundError:
            after = None
        if not before == opened == after or written != before[1]:
            raise SourceFileChanged(f"{name!r} changed on the source while it was read")

    def _archive(self, source: FileSource, name: str, archive_directory: str) -> None:
        path = self._file(source, name)
        if not path.is_file():
            raise NotFound(f"the file {name!r} is not in {source.directory!r}")
        archive = self._inside_root(archive_directory)
        try:
            archive.mkdir(parents=True, exist_ok=True)
            target = archive / name
            suffix = 0
            while target.exists():
                suffix += 1
                target = archive / f"{name}.{suffix}"
            path.rename(target)
        except OSError as error:
            raise SourceUnavailable(
                f"cannot archive {name!r} into {archive_directory!r}: {error.strerror}"
            ) from None

    def _file(self, source: FileSource, name: str) -> Path:
        if not is_plain_name(name):
            raise NotFound(f"{name!r} is not a file name")
        return self._inside_root(source.directory) / name

    def _inside_root(self, directory: str) -> Path:
        path = (self._root / directory.lstrip("/")).resolve()
        if not path.is_relative_to(self._root):
            raise SourceUnavailable(f"the directory {directory!r} is outside the sources root")
        return path


def _signature(attributes: os.stat_result) -> tuple[int, int, int]:
    return attributes.st_ino, attributes.st_size, attributes.st_mtime_ns
