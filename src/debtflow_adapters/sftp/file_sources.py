from __future__ import annotations

import asyncio
import binascii
import fnmatch
import io
import logging
import os
import posixpath
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from debtflow_core.domain.imports import SOURCE_SECRET_PREFIX, FileSource, is_source_secret_name
from debtflow_core.errors import NotFound, SourceFileChanged, SourceUnavailable
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile, is_plain_name

T = TypeVar("T")

log = logging.getLogger("debtflow.sftp")

REQUEST_BYTES = 32 * 1024
"""The largest read paramiko asks for in one SFTP request."""

_PRIVATE_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)


class SftpFileSourceReader(FileSourceReader):
    """Reads drop directories on SFTP servers, one SSH connection per call.

    Authentication uses the secret in the environment variable the source names in
    ``secret_env``, which must start with ``DEBTFLOW_SOURCE_SECRET_`` (any other name is
    refused without being read): a private key (ed25519, ECDSA or RSA, in OpenSSH or PEM
    text, not passphrase-protected; ``\\n`` escapes are accepted for one-line variables)
    when the value starts with ``-----BEGIN``, else a password. Neither an SSH agent nor
    keys in ``~/.ssh`` are ever tried.

    The server's host key must be the one pinned in ``source.host_key`` (OpenSSH public
    key text, ``ssh-ed25519 AAAA…``, as in ``ssh-keyscan``'s output without the host
    name): any other key is refused before we authenticate, with the fingerprint the
    server offered in the message.

    ``timeout_seconds`` bounds each phase on its own: the TCP connection, the SSH banner,
    authentication, and every SFTP request. paramiko blocks, so every call runs in a
    worker thread. A download reads ``window_bytes`` at a time with pipelined requests, so
    its memory stays within that window whatever the file's size. A file "changed" when
    its size or modification time (whole seconds: SFTP carries no more) differ before and
    after the download, or when the bytes read are not its size.

    A listed file whose name is not UTF-8 (SFTP names are bytes; a Windows client may
    write CP1252) or not a plain file name is left out, with a warning naming its bytes:
    one such file never stops the others from being listed.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        timeout_seconds: float = 15.0,
        window_bytes: int = 1024 * 1024,
    ) -> None:
        """``environ`` holds the secrets the sources name; the process environment when
        ``None``, read at each call."""
        self._environ = os.environ if environ is None else environ
        self._timeout = timeout_seconds
        self._window = max(REQUEST_BYTES, window_bytes - window_bytes % REQUEST_BYTES)

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        return await asyncio.to_thread(self._call, source, lambda sftp: _list(sftp, source))

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        path = _path(source, name)
        await asyncio.to_thread(
            self._call, source, lambda sftp: self._download(sftp, path, destination)
        )

    async def archive(self, source: FileSource, name: str) -> None:
        if source.archive_directory is None:
            return
        path = _path(source, name)
        archive_directory = source.archive_directory
        await asyncio.to_thread(
            self._call, source, lambda sftp: _archive(sftp, path, archive_directory)
        )

    def _call(self, source: FileSource, operation: Callable[[paramiko.SFTPClient], T]) -> T:
        where = f"{source.host}:{source.port}"
        with self._connect(source, where) as sftp:
            try:
                return operation(sftp)
            except (paramiko.SSHException, EOFError, TimeoutError) as error:
                raise SourceUnavailable(
                    f"the SFTP session with {where} failed: {error or type(error).__name__}"
                ) from None
            except UnicodeDecodeError as error:
                # paramiko decodes the text the server sends (an error's message) as UTF-8.
                raise SourceUnavailable(
                    f"the SFTP server {where} sent text that is not UTF-8: {error}"
                ) from None

    @contextmanager
    def _connect(self, source: FileSource, where: str) -> Iterator[paramiko.SFTPClient]:
        if source.host is None or source.username is None:
            raise SourceUnavailable(f"the SFTP source {source.name!r} has no host or username")
        pinned = _pinned_key(source)
        password, private_key = self._credentials(source)
        client = paramiko.SSHClient()
        client.get_host_keys().add(
            _known_hosts_name(source.host, source.port), pinned.get_name(), pinned
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                source.host,
                port=source.port,
                username=source.username,
                password=password,
                pkey=private_key,
                timeout=self._timeout,
                banner_timeout=self._timeout,
                auth_timeout=self._timeout,
                channel_timeout=self._timeout,
                allow_agent=False,
                look_for_keys=False,
            )
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self._timeout)
        except paramiko.BadHostKeyException as error:
            client.close()
            raise SourceUnavailable(
                f"the host key of {where} did not match the pinned one: the server offered "
                f"{error.key.get_name()} {error.key.fingerprint}, we pinned "
                f"{error.expected_key.get_name()} {error.expected_key.fingerprint}"
            ) from None
        except paramiko.AuthenticationException as error:
            client.close()
            raise SourceUnavailable(
                f"{where} refused to authenticate {source.username!r} with the "
                f"{'password' if password else 'private key'} in {source.secret_env}: {error}"
            ) from None
        except TimeoutError:
            client.close()
            raise SourceUnavailable(
                f"connecting to {where} timed out after {self._timeout:g} s"
            ) from None
        except (paramiko.SSHException, EOFError) as error:
            client.close()
            # paramiko reports a banner that never came in several ways, depending on
            # which of its threads notices first.
            raise SourceUnavailable(
                f"the SSH handshake with {where} failed: no answer within "
                f"{self._timeout:g} s, or no algorithm in common ({error or 'closed'})"
            ) from None
        except OSError as error:
            client.close()
            raise SourceUnavailable(f"cannot connect to {where}: {error}") from None
        try:
            yield sftp
        finally:
            client.close()

    def _credentials(self, source: FileSource) -> tuple[str | None, paramiko.PKey | None]:
        if source.secret_env is None:
            raise SourceUnavailable(f"the SFTP source {source.name!r} names no secret_env")
        # The core refuses such names; a row stored before that rule, or written around the
        # core, must still never make us send another variable (a database URL, the JWT
        # secret) to the source's server.
        if not is_source_secret_name(source.secret_env):
            raise SourceUnavailable(
                f"the SFTP source {source.name!r} names {source.secret_env!r} for its secret, "
                f"which is not set aside for source secrets (its name must start with "
                f"{SOURCE_SECRET_PREFIX}): it is not read"
            )
        secret = self._environ.get(source.secret_env)
        if not secret:
            raise SourceUnavailable(
                f"the environment variable {source.secret_env}, which holds the secret of "
                f"the SFTP source {source.name!r}, is not set"
            )
        if not secret.lstrip().startswith("-----BEGIN"):
            return secret, None
        if "\n" not in secret.strip():
            secret = secret.replace("\\n", "\n")
        for key_type in _PRIVATE_KEY_TYPES:
            try:
                return None, key_type.from_private_key(io.StringIO(secret))
            except (paramiko.SSHException, ValueError):
                continue
        raise SourceUnavailable(
            f"{source.secret_env} holds no private key we can read "
            "(ed25519, ECDSA or RSA, without a passphrase)"
        )

    def _download(self, sftp: paramiko.SFTPClient, path: str, destination: Path) -> None:
        try:
            before = sftp.stat(path)
            remote = sftp.open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"the file {path!r} is not on the source") from None
        except PermissionError:
            raise SourceUnavailable(f"the source does not let us read {path!r}") from None
        size = before.st_size or 0
        written = 0
        stalled = False
        with remote, destination.open("wb") as local:
            for start in range(0, size, self._window):
                # paramiko waits for the answer to a pipelined read past the end of a
                # shrunk file until its timeout, so look before each window.
                if not _same(before, remote.stat()):
                    break
                end = min(size, start + self._window)
                requests = [
                    (offset, min(REQUEST_BYTES, end - offset))
                    for offset in range(start, end, REQUEST_BYTES)
                ]
                try:
                    for data in remote.readv(requests, len(requests)):
                        local.write(data)
                        written += len(data)
                except EOFError:
                    break
                except TimeoutError:
                    stalled = True
                    break
        try:
            after: paramiko.SFTPAttributes | None = sftp.stat(path)
        except FileNotFoundError:
            after = None
        if not _same(before, after) or (written != size and not stalled):
            raise SourceFileChanged(f"{path!r} changed on the source while it was read")
        if stalled:
            raise SourceUnavailable(
                f"reading {path!r} stalled for {self._timeout:g} s at byte {written}"
            )


def _list(sftp: paramiko.SFTPClient, source: FileSource) -> list[RemoteFile]:
    try:
        entries = _directory_entries(sftp, source.directory)
    except OSError as error:
        raise SourceUnavailable(
            f"cannot list the drop directory {source.directory!r}: {error.strerror or error}"
        ) from None
    files = []
    for raw_name, entry in entries:
        name = raw_name.decode("utf-8", "surrogateescape")
        if not stat.S_ISREG(entry.st_mode or 0) or not fnmatch.fnmatchcase(name, source.pattern):
            continue
        if _is_utf8(raw_name) and is_plain_name(name):
            files.append(
                RemoteFile(
                    name=name,
                    size=entry.st_size or 0,
                    modified_at=datetime.fromtimestamp(entry.st_mtime or 0, UTC),
                )
            )
        else:
            log.warning(
                "SFTP source %s: skipping %r in %r: %s; rename it on the server to import it",
                source.id,
                raw_name,
                source.directory,
                "its name is not a plain file name"
                if _is_utf8(raw_name)
                else "its name is not UTF-8 (another encoding?)",
            )
    return sorted(files, key=lambda file: file.name)


def _directory_entries(
    sftp: paramiko.SFTPClient, directory: str
) -> list[tuple[bytes, paramiko.SFTPAttributes]]:
    """The entries of ``directory`` but ``.`` and ``..``, each name as the server sent it.

    ``listdir_attr`` as paramiko does it, without decoding: paramiko decodes every name,
    and the ``ls -l`` line (OpenSSH's repeats the name), as strict UTF-8, so that one file
    named in another encoding (``b"M\xe4rz.csv"`` in CP1252) would fail the whole listing.
    SFTP version 3 leaves names' encoding to the server, which passes the bytes on.
    """
    kind, message = sftp._request(CMD_OPENDIR, directory)
    if kind != CMD_HANDLE:
        raise SourceUnavailable(f"the SFTP server did not open {directory!r} for listing")
    handle = message.get_binary()
    entries = []
    while True:
        try:
            kind, message = sftp._request(CMD_READDIR, handle)
        except EOFError:
            break
        if kind != CMD_NAME:
            raise SourceUnavailable(f"the SFTP server did not list {directory!r}")
        for _ in range(message.get_int()):
            name = message.get_string()
            message.get_string()  # the ls -l line
            attributes = paramiko.SFTPAttributes._from_msg(message)
            if name not in (b".", b".."):
                entries.append((name, attributes))
    sftp._request(CMD_CLOSE, handle)
    return entries


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _archive(sftp: paramiko.SFTPClient, path: str, archive_directory: str) -> None:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        raise NotFound(f"the file {path!r} is not on the source") from None
    name = posixpath.basename(path)
    try:
        _make_directories(sftp, archive_directory)
        suffix = 0
        target = posixpath.join(archive_directory, name)
        while _exists(sftp, target):
            suffix += 1
            target = posixpath.join(archive_directory, f"{name}.{suffix}")
        sftp.rename(path, target)
    except OSError as error:
        raise SourceUnavailable(
            f"cannot archive {path!r} into {archive_directory!r}: {error.strerror or error}"
        ) from None


def _make_directories(sftp: paramiko.SFTPClient, directory: str) -> None:
    parent = posixpath.dirname(directory.rstrip("/"))
    if _exists(sftp, directory):
        return
    if parent and parent != directory:
        _make_directories(sftp, parent)
    sftp.mkdir(directory)


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _same(before: paramiko.SFTPAttributes, after: paramiko.SFTPAttributes | None) -> bool:
    return after is not None and (before.st_size, before.st_mtime) == (
        after.st_size,
        after.st_mtime,
    )


def _path(source: FileSource, name: str) -> str:
    if not is_plain_name(name):
        raise NotFound(f"{name!r} is not a file name")
    return posixpath.join(source.directory, name)


def _pinned_key(source: FileSource) -> paramiko.PKey:
    if not source.host_key:
        raise SourceUnavailable(
            f"the SFTP source {source.name!r} pins no host key: we do not connect blind"
        )
    try:
        key_type, data = source.host_key.split()[:2]
        return paramiko.PKey.from_type_string(key_type, binascii.a2b_base64(data))
    except (ValueError, binascii.Error, paramiko.SSHException):
        raise SourceUnavailable(
            f"the host key pinned for {source.name!r} is not an OpenSSH public key "
            "('ssh-ed25519 AAAA…')"
        ) from None


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"
