from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec

from debtflow_core.domain.imports import FileSource


class RemoteFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file waiting in a source's drop directory. ``modified_at`` is aware, in UTC."""

    name: str
    size: int
    modified_at: datetime


class FileSourceReader(Protocol):
    """Reads an agency's placement-file drop (an SFTP directory, a local directory).

    Every method opens what it needs and closes it again: a poll is a handful of calls
    every 15 minutes, so there is no connection to keep. The secret a source names in
    ``secret_env`` is looked up by the adapter (in the environment it was given) at each
    call, so a rotated secret takes effect at the next poll.

    Raises :class:`~debtflow_core.errors.SourceUnavailable` when the source cannot be
    reached or refuses us (down, timed out, wrong credentials, an unknown or changed host
    key, a drop directory that does not exist), with a message that says which;
    :class:`~debtflow_core.errors.SourceFileChanged` when a file changed while it was read;
    :class:`~debtflow_core.errors.NotFound` when the named file is not in the drop
    directory (gone since it was listed, or a name that is not a plain file name).
    """

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        """The regular files in ``source.directory`` whose names match ``source.pattern``
        (an :mod:`fnmatch` glob, case-sensitive), sorted by name."""
        ...

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        """Stream the file into ``destination`` (a local path, created or truncated), in
        constant memory. The file must keep its size and modification time from start to
        end, else :class:`~debtflow_core.errors.SourceFileChanged`; after any error
        ``destination`` may hold part of the file, for the caller to discard."""
        ...

    async def archive(self, source: FileSource, name: str) -> None:
        """Move the file into ``source.archive_directory``; nothing when that is unset.

        The archive directory is created when it is missing. An archived file is never
        overwritten: when its name is taken there, the file is archived as ``name.1``
        (or ``name.2``, …).
        """
        ...


def is_plain_name(name: str) -> bool:
    """Whether ``name`` can be a file in a drop directory: no path, no ``.`` or ``..``."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")
