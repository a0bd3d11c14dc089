from __future__ import annotations

import asyncio
import errno
import fnmatch
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from debtflow_core.domain.imports import FileSource, local_path_parts
from debtflow_core.errors import NotFound, SourceFileChanged, SourceUnavailable
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile, is_plain_name

log = logging.getLogger("debtflow.local_source")

CHUNK_BYTES = 1024 * 1024
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a named pipe swapped in for a file would hold the open until a writer came.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class LocalFileSourceReader(FileSourceReader):
    """Reads drop directories on this machine, all inside one ``root`` directory.

    A source's ``directory`` and ``archive_directory`` are paths inside ``root``; a leading
    ``/`` means ``root`` itself. Each lies in an agency's folder of ``root`` (its first
    part): the core only stores, and only polls, paths whose first part is the source's
    agency's slug, so this reader needs no slug to keep agencies apart. It only has to keep
    a path from leaving the folder it names: it opens each part of it in turn, from the
    one before, and follows no symbolic link, in the directories or in the files (a path
    through ``..`` out of ``root``, or one to ``root`` itself, is refused up front). A
    link swapped in between a listing and a download, or for a directory between two
    polls, so never leads to another agency's drop or the rest of the machine: it is
    refused with SourceUnavailable (a directory) or NotFound (a file). A file is
    "changed" when its inode, size or modification time (in nanoseconds) differ after the
    download from before it.
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
        files = []
        # The entries read their attributes through the directory's descriptor: in the block.
        with self._directory(source.directory) as directory:
            try:
                entries = list(os.scandir(directory))
            except OSError as error:
                raise SourceUnavailable(
                    f"cannot list the drop directory {source.directory!r}: {error.strerror}"
                ) from None
            for entry in entries:
                if not fnmatch.fnmatchcase(entry.name, source.pattern):
                    continue
                if not _is_text(entry.name):
                    log.warning(
                        "local source %s: skipping %r in %r: its name is not UTF-8 (another "
                        "encoding?); rename it to import it",
                        source.id,
                        os.fsencode(entry.name),
                        source.directory,
                    )
                    continue
                try:
                    attributes = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(attributes.st_mode):
                    modified_at = datetime.fromtimestamp(attributes.st_mtime, UTC)
                    files.append(
                        RemoteFile(
                            name=entry.name, size=attributes.st_size, modified_at=modified_at
                        )
                    )
        return sorted(files, key=lambda file: file.name)

    def _download(self, source: FileSource, name: str, destination: Path) -> None:
        _check_name(name)
        with self._directory(source.directory) as directory:
            try:
                descriptor = os.open(name, _FILE_FLAGS, dir_fd=directory)
            except PermissionError:
                raise SourceUnavailable(
                    f"we may not read {name!r} in {source.directory!r}"
                ) from None
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ELOOP):
                    # Gone, or a symbolic link: not a file in the drop either way.
                    raise NotFound(f"the file {name!r} is not in {source.directory!r}") from None
                raise SourceUnavailable(
                    f"cannot open {name!r} in {source.directory!r}: {error.strerror}"
                ) from None
            with os.fdopen(descriptor, "rb") as reader:
                before = os.fstat(descriptor)
                if not stat.S_ISREG(before.st_mode):
                    raise NotFound(f"{name!r} in {source.directory!r} is not a regular file")
                with destination.open("wb") as writer:
                    written = 0
                    while chunk := reader.read(CHUNK_BYTES):
                        writer.write(chunk)
                        written += len(chunk)
            try:
                after = _signature(os.stat(name, dir_fd=directory, follow_symlinks=False))
            except FileNotFoundError:
                after = None
        if _signature(before) != after or written != before.st_size:
            raise SourceFileChanged(f"{name!r} changed on the source while it was read")

    def _archive(self, source: FileSource, name: str, archive_directory: str) -> None:
        _check_name(name)
        with (
            self._directory(source.directory) as directory,
            self._directory(archive_directory, create=True) as archive,
        ):
            try:
                attributes = os.stat(name, dir_fd=directory, follow_symlinks=False)
            except FileNotFoundError:
                attributes = None
            if attributes is None or not stat.S_ISREG(attributes.st_mode):
                raise NotFound(f"the file {name!r} is not in {source.directory!r}")
            try:
                target = name
                suffix = 0
                while _exists(target, archive):
                    suffix += 1
                    target = f"{name}.{suffix}"
                # A rename moves a link swapped in since the check, never what it points to.
                os.rename(name, target, src_dir_fd=directory, dst_dir_fd=archive)
            except OSError as error:
                raise SourceUnavailable(
                    f"cannot archive {name!r} into {archive_directory!r}: {error.strerror}"
                ) from None

    @contextmanager
    def _directory(self, path: str, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``path`` of ``root``, opened part by part without
        following a symbolic link (the missing parts made first when ``create``)."""
        parts = local_path_parts(path)
        if parts[0] == "..":
            raise SourceUnavailable(f"the directory {path!r} is outside the sources root")
        if parts[0] == ".":
            raise SourceUnavailable(f"the directory {path!r} is the sources root itself")
        try:
            descriptor = os.open(self._root, _DIRECTORY_FLAGS)
        except OSError as error:
            raise SourceUnavailable(f"cannot open the sources root: {error.strerror}") from None
        try:
            for part in parts:
                descriptor = _open_part(descriptor, part, path, create=create)
            yield descriptor
        finally:
            os.close(descriptor)


def _open_part(parent: int, part: str, path: str, *, create: bool) -> int:
    """The directory ``part`` of ``parent``, which it closes in its place."""
    try:
        if create:
            with suppress(FileExistsError):
                os.mkdir(part, dir_fd=parent)
        child = os.open(part, _DIRECTORY_FLAGS, dir_fd=parent)
    except OSError as error:
        # With O_DIRECTORY, Linux says ENOTDIR rather than ELOOP for a link.
        if error.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, parent):
            raise SourceUnavailable(
                f"the directory {path!r} goes through the symbolic link {part!r}: local "
                "sources follow none"
            ) from None
        raise SourceUnavailable(f"cannot open the directory {path!r}: {error.strerror}") from None
    os.close(parent)
    return child


def _check_name(name: str) -> None:
    if not is_plain_name(name):
        raise NotFound(f"{name!r} is not a file name")


def _is_link(name: str, directory: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _exists(name: str, directory: int) -> bool:
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _signature(attributes: os.stat_result) -> tuple[int, int, int]:
    return attributes.st_ino, attributes.st_size, attributes.st_mtime_ns


def _is_text(name: str) -> bool:
    """Whether a name from the disk was UTF-8: Python keeps other bytes as lone surrogates,
    which no database column can hold."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True
