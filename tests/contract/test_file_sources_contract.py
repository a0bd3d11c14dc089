"""The FileSourceReader contract, against every adapter: in memory, a local directory, and
SFTP on a real OpenSSH server (by key and by password); then what only SFTP can do wrong."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import paramiko
import pytest

from debtflow_adapters.local import LocalFileSourceReader
from debtflow_adapters.memory.file_sources import InMemoryFileSourceReader
from debtflow_adapters.sftp import SftpFileSourceReader
from debtflow_core.domain.imports import FileSource, FileSourceKind
from debtflow_core.errors import NotFound, SourceFileChanged, SourceUnavailable
from debtflow_core.ports.file_sources import FileSourceReader
from tests.support.sshd import SshServer

SECRET_ENV = "DEBTFLOW_SOURCE_SECRET_TEST_SFTP"
INTERRUPT_AFTER = 1536 * 1024


def make_source(**changes: object) -> FileSource:
    fields: dict[str, object] = {
        "id": uuid4(),
        "agency_id": uuid4(),
        "name": "test drop",
        "kind": FileSourceKind.LOCAL,
        "host": None,
        "port": 22,
        "username": None,
        "secret_env": None,
        "host_key": None,
        "directory": "/drop/incoming",
        "pattern": "*.csv",
        "archive_directory": None,
        "delimiter": ",",
        "column_mapping": {},
        "schedule": "*/15 * * * *",
        "active": True,
        "created_at": datetime.now(UTC),
    }
    return FileSource(**(fields | changes))  # type: ignore[arg-type]


@dataclass
class Drop:
    """An adapter, a base directory of this test's own, and a way to see behind the port."""

    reader: FileSourceReader
    base: str
    source_fields: dict[str, object]
    put: Callable[[str, bytes], None]
    read: Callable[[str], bytes | None]
    names: Callable[[str], list[str]]
    make_directory: Callable[[str], None]

    def source(self, **changes: object) -> FileSource:
        fields = {
            "directory": f"{self.base}/incoming",
            "archive_directory": f"{self.base}/archive",
        }
        return make_source(**(self.source_fields | fields | changes))


def memory_drop() -> Drop:
    reader = InMemoryFileSourceReader()

    def split(path: str) -> tuple[str, str]:
        directory, _, name = path.rpartition("/")
        return directory, name

    return Drop(
        reader=reader,
        base="/drop",
        source_fields={},
        put=lambda path, content: reader.put(*split(path), content),
        read=lambda path: reader.read(*split(path)),
        names=reader.names,
        make_directory=reader.make_directory,
    )


def disk_drop(
    reader: FileSourceReader,
    root: Path,
    base: str,
    put: Callable[[str, bytes], object],
    source_fields: dict[str, object],
) -> Drop:
    def local(path: str) -> Path:
        return root / path.lstrip("/")

    def read(path: str) -> bytes | None:
        return local(path).read_bytes() if local(path).is_file() else None

    def names(directory: str) -> list[str]:
        return (
            sorted(p.name for p in local(directory).iterdir()) if local(directory).is_dir() else []
        )

    def make_directory(directory: str) -> None:
        put(f"{directory}/.keep", b"")
        local(f"{directory}/.keep").unlink()

    return Drop(
        reader=reader,
        base=base,
        source_fields=source_fields,
        put=lambda path, content: put(path, content) and None,
        read=read,
        names=names,
        make_directory=make_directory,
    )


def local_drop(root: Path) -> Drop:
    def put(path: str, content: bytes) -> None:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

    return disk_drop(LocalFileSourceReader(root), root, "/drop", put, {})


def sftp_source_fields(sshd: SshServer, **changes: object) -> dict[str, object]:
    return {
        "kind": FileSourceKind.SFTP,
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "secret_env": SECRET_ENV,
        "host_key": sshd.host_key,
    } | changes


def sftp_reader(secret: str, **options: float) -> SftpFileSourceReader:
    return SftpFileSourceReader({SECRET_ENV: secret}, **options)


def sftp_drop(sshd: SshServer, secret: str) -> Drop:
    return disk_drop(
        sftp_reader(secret),
        sshd.root,
        f"/drop/{secrets.token_hex(6)}",
        sshd.put,
        sftp_source_fields(sshd),
    )


@pytest.fixture(params=["memory", "local", "sftp-key", "sftp-password"])
def drop(request: pytest.FixtureRequest, tmp_path: Path) -> Drop:
    if request.param == "memory":
        return memory_drop()
    if request.param == "local":
        return local_drop(tmp_path)
    sshd: SshServer = request.getfixturevalue("sshd")
    return sftp_drop(sshd, sshd.ed25519_key if request.param == "sftp-key" else sshd.password)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A named pipe as the destination: a download into it waits for the test to read."""
    path = tmp_path / "destination.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def interrupt(fifo: Path) -> Iterator[Callable[[Callable[[], None]], None]]:
    """``interrupt(act)``: a download into ``fifo`` runs ``act`` once it has written
    :data:`INTERRUPT_AFTER` bytes (the pipe's buffer holds it back there meanwhile)."""
    threads: list[threading.Thread] = []

    def start(act: Callable[[], None]) -> None:
        def drain() -> None:
            with fifo.open("rb") as reader:
                reader.read(INTERRUPT_AFTER)
                act()
                while reader.read(64 * 1024):
                    pass

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(5)
        if thread.is_alive():
            # The download never opened the pipe: open it once to release the reader.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(5)


# The contract, against every adapter


async def test_lists_the_regular_files_matching_the_pattern_sorted_by_name(drop: Drop) -> None:
    incoming = f"{drop.base}/incoming"
    drop.put(f"{incoming}/b.csv", b"bb")
    drop.put(f"{incoming}/a.csv", b"a")
    drop.put(f"{incoming}/notes.txt", b"not matched")
    drop.put(f"{incoming}/UPPER.CSV", b"the glob is case-sensitive")
    drop.make_directory(f"{incoming}/folder.csv")

    files = await drop.reader.list_files(drop.source())

    assert [(file.name, file.size) for file in files] == [("a.csv", 1), ("b.csv", 2)]
    for file in files:
        assert file.modified_at.tzinfo is not None
        assert abs(datetime.now(UTC) - file.modified_at) < timedelta(minutes=1)


async def test_an_empty_drop_directory_lists_nothing(drop: Drop) -> None:
    drop.make_directory(f"{drop.base}/incoming")

    assert await drop.reader.list_files(drop.source()) == []


async def test_a_missing_drop_directory_is_unavailable(drop: Drop) -> None:
    with pytest.raises(SourceUnavailable, match="incoming"):
        await drop.reader.list_files(drop.source())


async def test_downloads_the_exact_bytes(drop: Drop, tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 12345)
    drop.put(f"{drop.base}/incoming/big.csv", content)
    destination = tmp_path / "big.csv"

    await drop.reader.download(drop.source(), "big.csv", destination)

    assert destination.read_bytes() == content


async def test_downloads_an_empty_file(drop: Drop, tmp_path: Path) -> None:
    drop.put(f"{drop.base}/incoming/empty.csv", b"")
    destination = tmp_path / "empty.csv"

    await drop.reader.download(drop.source(), "empty.csv", destination)

    assert destination.read_bytes() == b""


@pytest.mark.parametrize("name", ["gone.csv", "../incoming/a.csv", "", ".."])
async def test_downloading_what_is_not_a_file_in_the_drop_is_not_found(
    drop: Drop, tmp_path: Path, name: str
) -> None:
    drop.put(f"{drop.base}/incoming/a.csv", b"a")

    with pytest.raises(NotFound):
        await drop.reader.download(drop.source(), name, tmp_path / "out")


async def test_a_file_rewritten_during_the_download_has_changed(
    drop: Drop, fifo: Path, interrupt: Callable[[Callable[[], None]], None]
) -> None:
    path = f"{drop.base}/incoming/placements.csv"
    drop.put(path, os.urandom(4 * 1024 * 1024))
    interrupt(lambda: drop.put(path, b"a new, shorter file"))

    with pytest.raises(SourceFileChanged, match=r"placements\.csv"):
        await drop.reader.download(drop.source(), "placements.csv", fifo)


async def test_archive_moves_the_file_into_the_archive_directory_made_when_missing(
    drop: Drop,
) -> None:
    drop.put(f"{drop.base}/incoming/a.csv", b"first")
    drop.put(f"{drop.base}/incoming/b.csv", b"stays")

    await drop.reader.archive(drop.source(archive_directory=f"{drop.base}/old/2026"), "a.csv")

    assert drop.names(f"{drop.base}/incoming") == ["b.csv"]
    assert drop.read(f"{drop.base}/old/2026/a.csv") == b"first"
    assert [file.name for file in await drop.reader.list_files(drop.source())] == ["b.csv"]


async def test_archive_never_overwrites_an_archived_file(drop: Drop) -> None:
    source = drop.source()
    for content in (b"monday", b"tuesday", b"wednesday"):
        drop.put(f"{drop.base}/incoming/daily.csv", content)
        await drop.reader.archive(source, "daily.csv")

    archive = f"{drop.base}/archive"
    assert drop.names(archive) == ["daily.csv", "daily.csv.1", "daily.csv.2"]
    assert drop.read(f"{archive}/daily.csv") == b"monday"
    assert drop.read(f"{archive}/daily.csv.2") == b"wednesday"


async def test_archive_does_nothing_without_an_archive_directory(drop: Drop) -> None:
    drop.put(f"{drop.base}/incoming/a.csv", b"a")

    await drop.reader.archive(drop.source(archive_directory=None), "a.csv")

    assert drop.names(f"{drop.base}/incoming") == ["a.csv"]


async def test_archiving_a_missing_file_is_not_found(drop: Drop) -> None:
    drop.make_directory(f"{drop.base}/incoming")

    with pytest.raises(NotFound):
        await drop.reader.archive(drop.source(), "gone.csv")


# What only a local directory can get wrong


@pytest.mark.parametrize(
    ("directory", "why"),
    [
        ("/../outside", "outside the sources root"),
        ("drop/../../outside", "outside the sources root"),
        ("/", "the sources root itself"),
        (".", "the sources root itself"),
    ],
)
async def test_local_refuses_a_directory_outside_an_agencys_folder_of_its_root(
    tmp_path: Path, directory: str, why: str
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(b"not an agency's")
    root.mkdir()
    (root / "secret.csv").write_bytes(b"not an agency's")
    reader = LocalFileSourceReader(root)

    with pytest.raises(SourceUnavailable, match=why):
        await reader.list_files(make_source(directory=directory))
    with pytest.raises(SourceUnavailable, match=why):
        await reader.download(make_source(directory=directory), "secret.csv", tmp_path / "out")


@pytest.fixture
def agencies(tmp_path: Path) -> Path:
    """A sources root with acme's and beta's drops, and a directory outside it."""
    root = tmp_path / "root"
    for agency in ("acme", "beta"):
        (root / agency / "inbound").mkdir(parents=True)
        (root / agency / "inbound" / "placements.csv").write_bytes(agency.encode())
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "placements.csv").write_bytes(b"not an agency's")
    return root


async def test_local_lists_the_other_files_past_a_name_that_is_not_utf8(
    agencies: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbound = os.fsencode(agencies / "acme" / "inbound")
    with open(os.path.join(inbound, b"M\xe4rz.csv"), "wb") as file:  # as Windows might name it
        file.write(b"x")
    caplog.set_level(logging.INFO, logger="debtflow.local_source")

    files = await LocalFileSourceReader(agencies).list_files(make_source(directory="acme/inbound"))

    assert [file.name for file in files] == ["placements.csv"]
    [warning] = [record.getMessage() for record in caplog.records]
    assert "b'M\\xe4rz.csv'" in warning and "not UTF-8" in warning


@pytest.mark.parametrize(
    ("link", "target", "directory"),
    [
        ("acme/inbound", "../beta/inbound", "acme/inbound"),  # into another agency's drop
        ("acme/inbound", "../../outside", "acme/inbound"),  # out of the root
        ("acme", "beta", "acme/inbound"),  # the agency's folder itself
        ("link", "../outside", "link"),
    ],
)
async def test_local_follows_no_symbolic_link_to_a_directory(
    agencies: Path, tmp_path: Path, link: str, target: str, directory: str
) -> None:
    shutil.rmtree(agencies / link, ignore_errors=True)
    (agencies / link).symlink_to(target)
    reader = LocalFileSourceReader(agencies)
    through = make_source(directory=directory)

    with pytest.raises(SourceUnavailable, match="symbolic link"):
        await reader.list_files(through)
    with pytest.raises(SourceUnavailable, match="symbolic link"):
        await reader.download(through, "placements.csv", tmp_path / "out")
    (agencies / "acme" / "own").mkdir(parents=True, exist_ok=True)
    (agencies / "acme" / "own" / "mine.csv").write_bytes(b"acme's")
    with pytest.raises(SourceUnavailable, match="symbolic link"):
        await reader.archive(
            make_source(directory="acme/own", archive_directory=through.directory), "mine.csv"
        )

    assert (agencies / "acme" / "own" / "mine.csv").read_bytes() == b"acme's"
    assert (agencies / "beta" / "inbound" / "placements.csv").read_bytes() == b"beta"
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["placements.csv"]
    assert not (tmp_path / "out").exists()


async def test_local_follows_no_symbolic_link_swapped_in_for_a_listed_file(
    agencies: Path, tmp_path: Path
) -> None:
    reader = LocalFileSourceReader(agencies)
    source = make_source(directory="acme/inbound", archive_directory="acme/done")
    listed = await reader.list_files(source)
    assert [file.name for file in listed] == ["placements.csv"]
    # Between the listing and the download: the file becomes a link to beta's.
    swapped = agencies / "acme" / "inbound" / "placements.csv"
    swapped.unlink()
    swapped.symlink_to(agencies / "beta" / "inbound" / "placements.csv")
    destination = tmp_path / "out"

    with pytest.raises(NotFound, match=r"placements\.csv"):
        await reader.download(source, "placements.csv", destination)
    with pytest.raises(NotFound, match=r"placements\.csv"):
        await reader.archive(source, "placements.csv")

    assert not destination.exists()
    assert (agencies / "beta" / "inbound" / "placements.csv").read_bytes() == b"beta"
    assert swapped.is_symlink()
    assert await reader.list_files(source) == []


async def test_local_never_opens_a_named_pipe_swapped_in_for_a_listed_file(
    agencies: Path, tmp_path: Path
) -> None:
    reader = LocalFileSourceReader(agencies)
    source = make_source(directory="acme/inbound")
    swapped = agencies / "acme" / "inbound" / "placements.csv"
    swapped.unlink()
    os.mkfifo(swapped)  # opened for reading, it would wait for a writer for ever

    with pytest.raises(NotFound, match="not a regular file"):
        await asyncio.wait_for(reader.download(source, "placements.csv", tmp_path / "out"), 5)


# What only SFTP can get wrong


def fingerprint(public_key: str) -> str:
    key_type, data = public_key.split()[:2]
    return str(paramiko.PKey.from_type_string(key_type, base64.b64decode(data)).fingerprint)


@pytest.fixture
def sftp(sshd: SshServer) -> Drop:
    return sftp_drop(sshd, sshd.ed25519_key)


async def test_sftp_refuses_a_server_whose_host_key_is_not_the_pinned_one(
    sshd: SshServer, sftp: Drop, tmp_path: Path
) -> None:
    sftp.put(f"{sftp.base}/incoming/a.csv", b"secret placements")
    destination = tmp_path / "a.csv"

    with pytest.raises(SourceUnavailable) as refused:
        await sftp.reader.download(sftp.source(host_key=sshd.other_host_key), "a.csv", destination)

    assert "did not match" in refused.value.detail
    assert fingerprint(sshd.host_key) in refused.value.detail
    assert not destination.exists()


async def test_sftp_refuses_a_server_without_a_key_of_the_pinned_type_naming_both(
    sshd: SshServer, sftp: Drop, tmp_path: Path
) -> None:
    rsa = paramiko.RSAKey.from_private_key(io.StringIO(sshd.rsa_key))  # the server has none
    pinned = f"{rsa.get_name()} {rsa.get_base64()}"

    with pytest.raises(SourceUnavailable) as refused:
        await sftp.reader.list_files(sftp.source(host_key=pinned))

    assert "did not match" in refused.value.detail
    assert fingerprint(sshd.host_key) in refused.value.detail
    assert rsa.fingerprint in refused.value.detail


@pytest.mark.parametrize("host_key", [None, "", "ssh-ed25519", "ssh-ed25519 not-base64!"])
async def test_sftp_does_not_connect_without_a_valid_pinned_host_key(
    sftp: Drop, host_key: str | None
) -> None:
    with pytest.raises(SourceUnavailable, match="host key"):
        await sftp.reader.list_files(sftp.source(host_key=host_key))


async def test_sftp_with_the_server_down_is_unavailable_at_once(sshd: SshServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    source = make_source(**sftp_source_fields(sshd, port=closed_port))
    started = time.monotonic()

    with pytest.raises(SourceUnavailable, match=f"cannot connect to 127.0.0.1:{closed_port}"):
        await sftp_reader(sshd.password).list_files(source)

    assert time.monotonic() - started < 2


async def test_sftp_gives_up_on_a_silent_server_without_blocking_the_event_loop(
    sshd: SshServer,
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    # A socket that listens but never answers: the kernel accepts, no banner ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        source = make_source(**sftp_source_fields(sshd, port=silent.getsockname()[1]))
        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=r"no answer within 0\.5 s"):
            await sftp_reader(sshd.password, timeout_seconds=0.5).list_files(source)
        ticker.cancel()

    assert time.monotonic() - started < 3
    assert ticks >= 10


async def test_sftp_with_a_wrong_password_is_refused(sshd: SshServer, sftp: Drop) -> None:
    reader = sftp_reader("not the password")

    with pytest.raises(SourceUnavailable, match="refused to authenticate 'debtflow-sftp'"):
        await reader.list_files(sftp.source())


async def test_sftp_without_the_secret_in_the_environment_is_unavailable(sftp: Drop) -> None:
    with pytest.raises(SourceUnavailable, match=r"DEBTFLOW_SOURCE_SECRET_TEST_NOT_SET.*not set"):
        await sftp.reader.list_files(sftp.source(secret_env="DEBTFLOW_SOURCE_SECRET_TEST_NOT_SET"))


class RecordingEnviron(Mapping[str, str]):
    """An environment that remembers every variable looked up in it."""

    def __init__(self, variables: dict[str, str]) -> None:
        self._variables = variables
        self.read: list[str] = []

    def __getitem__(self, name: str) -> str:
        self.read.append(name)
        return self._variables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._variables)

    def __len__(self) -> int:
        return len(self._variables)


@pytest.mark.parametrize(
    "name", ["DEBTFLOW_JWT_SECRET", "PATH", "debtflow_source_secret_X", "DEBTFLOW_SOURCE_SECRET_"]
)
async def test_sftp_never_reads_a_variable_not_set_aside_for_source_secrets(name: str) -> None:
    # As a row stored before the rule, or written around the core, could name it.
    environ = RecordingEnviron({name: "the secret", "DEBTFLOW_SOURCE_SECRET_X": "x"})
    source = make_source(
        kind=FileSourceKind.SFTP,
        host="127.0.0.1",
        port=9,
        username="attacker",
        secret_env=name,
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    )

    with pytest.raises(SourceUnavailable, match=r"must start with DEBTFLOW_SOURCE_SECRET_"):
        await SftpFileSourceReader(environ).list_files(source)

    assert environ.read == []


@pytest.mark.parametrize("one_line", [False, True])
async def test_sftp_authenticates_with_an_rsa_key_in_pem_form(
    sshd: SshServer, sftp: Drop, one_line: bool
) -> None:
    key = sshd.rsa_key.replace("\n", "\\n") if one_line else sshd.rsa_key
    sftp.put(f"{sftp.base}/incoming/a.csv", b"a")

    files = await sftp_reader(key).list_files(sftp.source())

    assert [file.name for file in files] == ["a.csv"]


async def test_sftp_lists_the_other_files_past_a_name_that_is_not_utf8_or_not_plain(
    sshd: SshServer, sftp: Drop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    incoming = f"{sftp.base}/incoming"
    sftp.put(f"{incoming}/a.csv", b"a")
    sftp.put(f"{incoming}/z.csv", b"zz")
    # Named on the server's disk as a Windows client might: bytes that are not UTF-8.
    for name in (b"M\xe4rz.csv", b"notes-\xe4.txt", b"back\\slash.csv"):
        with open(os.path.join(os.fsencode(sshd.local(incoming)), name), "wb") as file:
            file.write(b"x")
    caplog.set_level(logging.INFO, logger="debtflow.sftp")

    files = await sftp.reader.list_files(sftp.source())

    assert [file.name for file in files] == ["a.csv", "z.csv"]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert any("b'M\\xe4rz.csv'" in warning and "not UTF-8" in warning for warning in warnings)
    assert any("slash.csv" in warning for warning in warnings)
    assert not any("notes" in warning for warning in warnings)  # not matched: not ours
    await sftp.reader.download(sftp.source(), "z.csv", tmp_path / "z.csv")
    assert (tmp_path / "z.csv").read_bytes() == b"zz"


async def test_sftp_sees_a_file_replaced_during_the_download(
    sshd: SshServer, sftp: Drop, fifo: Path, interrupt: Callable[[Callable[[], None]], None]
) -> None:
    path = f"{sftp.base}/incoming/placements.csv"
    sftp.put(path, os.urandom(4 * 1024 * 1024))
    sftp.put(f"{sftp.base}/incoming/next.tmp", os.urandom(4 * 1024 * 1024 + 1))
    interrupt(lambda: os.replace(sshd.local(f"{sftp.base}/incoming/next.tmp"), sshd.local(path)))

    with pytest.raises(SourceFileChanged):
        await sftp.reader.download(sftp.source(), "placements.csv", fifo)


async def test_sftp_sees_a_file_growing_during_the_download(
    sshd: SshServer, sftp: Drop, fifo: Path, interrupt: Callable[[Callable[[], None]], None]
) -> None:
    path = f"{sftp.base}/incoming/placements.csv"
    sftp.put(path, os.urandom(4 * 1024 * 1024))

    def append() -> None:
        with sshd.local(path).open("ab") as still_uploading:
            still_uploading.write(b"more rows\n")

    interrupt(append)

    with pytest.raises(SourceFileChanged):
        await sftp.reader.download(sftp.source(), "placements.csv", fifo)


async def test_sftp_streams_a_50_mb_file_in_flat_memory(
    sshd: SshServer, sftp: Drop, tmp_path: Path
) -> None:
    path = f"{sftp.base}/incoming/big.csv"
    sftp.put(path, b"")
    digest = hashlib.sha256()
    with sshd.local(path).open("wb") as writer:
        for _ in range(50):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            writer.write(chunk)
    destination = tmp_path / "big.csv"

    tracemalloc.start()
    try:
        await sftp.reader.download(sftp.source(), "big.csv", destination)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # About 4 MB on an idle machine (a window of pipelined reads); more replies pile up
    # when the machine is busy. Far from the 50 MB a whole-file read would take.
    assert peak < 16 * 1024 * 1024
    with destination.open("rb") as written:
        assert hashlib.file_digest(written, "sha256").digest() == digest.digest()
