from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Protocol


class ObjectStorage(Protocol):
    """Durable blobs by key: placement-file backups and exports (S3, a local directory).

    Keys are ``/``-separated relative paths: a key that is empty, starts with ``/``, or has
    an empty, ``.`` or ``..`` segment (or a backslash or NUL) raises :class:`ValueError`.
    Writing an existing key replaces it; readers never see a half-written object.
    Raises :class:`~debtflow_core.errors.StorageUnavailable` when the storage cannot be
    reached or refuses us; the caller may retry later. Its detail may reach a client, so it
    names neither the storage's address nor a path on our servers: adapters log those.
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
        URL on S3; a signed link served by the API on local storage. ``expires_in`` is
        between one second and seven days (S3's limit), else :class:`ValueError`. The
        object need not exist yet; the link then fails (404; 403 on S3, which hides
        from a link's reader whether a key exists)."""
        ...

    async def check(self) -> None:
        """Return when the storage can be used now, for a readiness check: the bucket
        answers, the directory is writable. Raises StorageUnavailable otherwise, within a
        few seconds."""
        ...


MAX_LINK_LIFETIME = timedelta(days=7)


def check_key(key: str) -> str:
    """``key`` when it is a valid object key (see :class:`ObjectStorage`), else ValueError."""
    segments = key.split("/")
    if not key or "\\" in key or "\0" in key or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"invalid object key {key!r}: want a relative path like 'a/b.csv'")
    return key


def check_link_lifetime(expires_in: timedelta) -> int:
    """``expires_in`` in whole seconds, when it is a valid link lifetime, else ValueError."""
    if not timedelta(seconds=1) <= expires_in <= MAX_LINK_LIFETIME:
        raise ValueError(f"a download link lives 1 s to 7 days, not {expires_in}")
    return int(expires_in.total_seconds())
