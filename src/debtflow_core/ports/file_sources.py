from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec

from debtflow_core.domain.imports import FileSource


class RemoteFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file waiting in a source's drop directory."""

    name: str
    size: int
    modified_at: datetime


class FileSourceReader(Protocol):
    """Reads an agency's placement-file drop (an SFTP directory, a local directory).

    Every method opens what it needs and closes it again: a poll is a handful of calls
    every 15 minutes, so there is no connection to keep. Raises
    :class:`~debtflow_core.errors.SourceUnavailable` when the source cannot be reached or
    refuses us (including an unknown or changed host key), and
    :class:`~debtflow_core.errors.SourceFileChanged` when a file changed while it was read.
    """

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        """The files in ``source.directory`` matching ``source.pattern`` (a glob), by name."""
        ...

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        """Stream the file into ``destination`` (a local path), in constant memory."""
        ...

    async def archive(self, source: FileSource, name: str) -> None:
        """Move the file into ``source.archive_directory``; nothing when that is unset."""
        ...
