"""The ObjectStorage contract, against every adapter: in memory, a local directory, and S3
(moto's server over real HTTP); then signed links, local atomicity, and S3's own cases."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest

from debtflow_adapters.local import LocalObjectStorage, SignedLinks, content_disposition
from debtflow_adapters.memory.clock import FixedClock
from debtflow_adapters.memory.object_storage import InMemoryObjectStorage
from debtflow_adapters.s3 import S3Config, S3ObjectStorage
from debtflow_core.errors import NotFound, StorageUnavailable
from debtflow_core.ports.object_storage import ObjectStorage

SECRET = b"a link-signing secret of 32 bytes or more"
FILE_NAME = "Placements März 2026.csv"


@dataclass(frozen=True)
class Download:
    status: int
    body: bytes
    content_disposition: str | None


@dataclass
class Storage:
    storage: ObjectStorage
    fetch: Callable[[str], Awaitable[Download]]
    """Follows a download link as a browser would (on the API's route for signed links)."""
    missing: int = 404
    """The status of a link to a missing object: S3 answers 403 to whoever may not list
    the bucket, which a link's reader never may."""


def served_by_the_api(storage: ObjectStorage, links: SignedLinks, tmp_path: Path) -> Storage:
    """What the ``/v1/files/{key}`` route will do: verify the link, then stream the object."""

    async def fetch(url: str) -> Download:
        parts = urlsplit(url)
        key = unquote(parts.path.removeprefix("/v1/files/"))
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        if not links.verify(key, query["name"], int(query["expires"]), query["signature"]):
            return Download(403, b"", None)
        try:
            await storage.get_file(key, tmp_path / "served")
        except NotFound:
            return Download(404, b"", None)
        body = (tmp_path / "served").read_bytes()
        return Download(200, body, content_disposition(query["name"]))

    return Storage(storage, fetch)


async def over_http(url: str) -> Download:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return Download(
                response.status, response.read(), response.headers["Content-Disposition"]
            )
    except urllib.error.HTTPError as error:
        return Download(error.code, b"", None)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def links(clock: FixedClock) -> SignedLinks:
    return SignedLinks(SECRET, base_url="https://debtflow.test/", clock=clock)


@pytest.fixture(params=["memory", "local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, links: SignedLinks) -> Storage:
    if request.param == "memory":
        return served_by_the_api(InMemoryObjectStorage(links), links, tmp_path)
    if request.param == "local":
        return served_by_the_api(LocalObjectStorage(tmp_path / "objects", links), links, tmp_path)
    config: S3Config = request.getfixturevalue("s3_bucket")
    return Storage(S3ObjectStorage(config), over_http, missing=403)


@pytest.fixture
def upload(tmp_path: Path) -> Callable[[bytes], Path]:
    """A local file holding ``content``, to upload."""

    def write(content: bytes) -> Path:
        path = tmp_path / f"upload-{len(list(tmp_path.glob('upload-*')))}"
        path.write_bytes(content)
        return path

    return write


# The contract, against every adapter


async def test_a_file_put_comes_back_whole(
    store: Storage, upload: Callable[[bytes], Path], tmp_path: Path
) -> None:
    content = os.urandom(300_000)
    key = "backups/2026/11/placements.csv"

    await store.storage.put_file(key, upload(content), content_type="text/csv")
    await store.storage.get_file(key, tmp_path / "back")

    assert (tmp_path / "back").read_bytes() == content
    assert await store.storage.exists(key)


async def test_putting_a_key_again_replaces_the_object(
    store: Storage, upload: Callable[[bytes], Path], tmp_path: Path
) -> None:
    await store.storage.put_file("a.csv", upload(b"first"), content_type="text/csv")
    await store.storage.put_file("a.csv", upload(b"second"), content_type="text/csv")

    await store.storage.get_file("a.csv", tmp_path / "back")

    assert (tmp_path / "back").read_bytes() == b"second"


async def test_a_missing_object_is_not_found(store: Storage, tmp_path: Path) -> None:
    assert not await store.storage.exists("nothing/here.csv")
    with pytest.raises(NotFound):
        await store.storage.get_file("nothing/here.csv", tmp_path / "back")


async def test_delete_removes_the_object_and_forgives_a_missing_one(
    store: Storage, upload: Callable[[bytes], Path]
) -> None:
    await store.storage.put_file("a/b.csv", upload(b"x"), content_type="text/csv")

    await store.storage.delete("a/b.csv")
    await store.storage.delete("a/b.csv")

    assert not await store.storage.exists("a/b.csv")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a//b", "../a", "a/../../b", "a/./b", "a\\b"])
async def test_a_key_that_is_no_relative_path_is_refused(
    store: Storage, upload: Callable[[bytes], Path], tmp_path: Path, key: str
) -> None:
    source = upload(b"x")
    with pytest.raises(ValueError, match="invalid object key"):
        await store.storage.put_file(key, source, content_type="text/csv")
    with pytest.raises(ValueError, match="invalid object key"):
        await store.storage.get_file(key, tmp_path / "back")
    with pytest.raises(ValueError, match="invalid object key"):
        await store.storage.exists(key)
    with pytest.raises(ValueError, match="invalid object key"):
        await store.storage.delete(key)
    with pytest.raises(ValueError, match="invalid object key"):
        await store.storage.download_url(key, expires_in=timedelta(hours=1), file_name="a")


async def test_a_download_link_gives_the_object_under_its_file_name(
    store: Storage, upload: Callable[[bytes], Path]
) -> None:
    content = os.urandom(100_000)
    await store.storage.put_file("exports/123.csv", upload(content), content_type="text/csv")

    url = await store.storage.download_url(
        "exports/123.csv", expires_in=timedelta(minutes=5), file_name=FILE_NAME
    )
    download = await store.fetch(url)

    assert (download.status, download.body) == (200, content)
    assert download.content_disposition is not None
    assert "filename*=UTF-8''Placements%20M%C3%A4rz%202026.csv" in download.content_disposition


async def test_a_usable_storage_passes_its_check(store: Storage) -> None:
    await store.storage.check()  # raises StorageUnavailable otherwise


async def test_a_download_link_to_a_missing_object_answers_not_found(store: Storage) -> None:
    url = await store.storage.download_url(
        "not/yet.csv", expires_in=timedelta(minutes=5), file_name="yet.csv"
    )

    assert (await store.fetch(url)).status == store.missing


@pytest.mark.parametrize("expires_in", [timedelta(0), timedelta(days=7, seconds=1)])
async def test_a_download_link_lives_one_second_to_seven_days(
    store: Storage, expires_in: timedelta
) -> None:
    with pytest.raises(ValueError, match="7 days"):
        await store.storage.download_url("a.csv", expires_in=expires_in, file_name="a.csv")


# Signed links for the API's route


def link_parts(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    key = unquote(parts.path.removeprefix("/v1/files/"))
    return key, query["name"], int(query["expires"]), query["signature"]


def test_a_signed_link_verifies_until_it_expires(links: SignedLinks, clock: FixedClock) -> None:
    url = links.url("exports/1.csv", file_name="1.csv", expires_in=timedelta(minutes=5))

    assert url.startswith("https://debtflow.test/v1/files/exports/1.csv?")
    assert links.verify(*link_parts(url))
    clock.advance(timedelta(minutes=5, seconds=1))
    assert not links.verify(*link_parts(url))


def test_a_signed_link_with_any_part_changed_does_not_verify(links: SignedLinks) -> None:
    key, name, expires, signature = link_parts(
        links.url("exports/1.csv", file_name="1.csv", expires_in=timedelta(minutes=5))
    )

    assert not links.verify("exports/2.csv", name, expires, signature)
    assert not links.verify(key, "other.csv", expires, signature)
    assert not links.verify(key, name, expires + 3600, signature)
    flipped = "1" if signature[-1] == "0" else "0"
    assert not links.verify(key, name, expires, signature[:-1] + flipped)
    other = SignedLinks(
        b"another secret, also 32 bytes long", base_url="x", clock=FixedClock(datetime.now(UTC))
    )
    assert not other.verify(key, name, expires, signature)


def test_a_short_link_secret_is_refused(clock: FixedClock) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SignedLinks(b"too short", base_url="https://debtflow.test", clock=clock)


def test_content_disposition_falls_back_to_ascii_for_old_clients() -> None:
    assert content_disposition('Jänner "final".csv') == (
        'attachment; filename="J_nner _final_.csv"; '
        "filename*=UTF-8''J%C3%A4nner%20%22final%22.csv"
    )


# Local storage


async def test_local_storage_leaves_no_partial_file_behind(
    tmp_path: Path, links: SignedLinks, upload: Callable[[bytes], Path]
) -> None:
    storage = LocalObjectStorage(tmp_path / "objects", links)

    await storage.put_file("a/b.csv", upload(b"one"), content_type="text/csv")
    await storage.put_file("a/b.csv", upload(b"two"), content_type="text/csv")
    with pytest.raises(IsADirectoryError):
        await storage.put_file("a/c.csv", tmp_path, content_type="text/csv")

    assert sorted(p.name for p in (tmp_path / "objects" / "a").iterdir()) == ["b.csv"]


# S3


def s3_client(config: S3Config) -> Any:
    return boto3.session.Session().client(
        "s3",
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        aws_access_key_id=config.access_key,
        aws_secret_access_key=config.secret_key,
    )


async def test_s3_uploads_a_large_file_in_parts(s3_bucket: S3Config, tmp_path: Path) -> None:
    storage = S3ObjectStorage(s3_bucket)
    source = tmp_path / "large.csv"
    with source.open("wb") as writer:
        for _ in range(12):
            writer.write(os.urandom(1024 * 1024))

    await storage.put_file("backups/large.csv", source, content_type="text/csv")
    await storage.get_file("backups/large.csv", tmp_path / "back.csv")

    head = s3_client(s3_bucket).head_object(Bucket=s3_bucket.bucket, Key="backups/large.csv")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "text/csv"
    with source.open("rb") as sent, (tmp_path / "back.csv").open("rb") as received:
        assert (
            hashlib.file_digest(sent, "sha256").digest()
            == hashlib.file_digest(received, "sha256").digest()
        )


async def test_s3_without_its_bucket_is_unavailable(
    s3_bucket: S3Config,
    upload: Callable[[bytes], Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = S3ObjectStorage(S3Config(**{**vars(s3_bucket), "bucket": "no-such-bucket"}))

    with pytest.raises(StorageUnavailable) as uploading:
        await storage.put_file("a.csv", upload(b"x"), content_type="text/csv")
    with pytest.raises(StorageUnavailable) as deleting:
        await storage.delete("a.csv")
    with pytest.raises(StorageUnavailable) as checking:
        await storage.check()

    # The detail may reach a client: the bucket and S3's message go to our log only.
    for caught in (uploading, deleting, checking):
        assert caught.value.detail == "object storage refused the request"
    logged = [r for r in caplog.records if r.name == "debtflow.s3"]
    assert [r.levelno for r in logged] == [logging.ERROR] * 3
    assert (logged[0].__dict__["key"], logged[0].__dict__["bucket"]) == ("a.csv", "no-such-bucket")
    assert "NoSuchBucket" in logged[0].__dict__["reason"]


async def test_s3_unreachable_is_unavailable(
    s3_bucket: S3Config,
    upload: Callable[[bytes], Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    storage = S3ObjectStorage(S3Config(**{**vars(s3_bucket), "endpoint_url": closed}))

    failures = []
    with pytest.raises(StorageUnavailable) as caught:
        await storage.put_file("a.csv", upload(b"x"), content_type="text/csv")
    failures.append(caught.value)
    with pytest.raises(StorageUnavailable) as caught:
        await storage.get_file("a.csv", tmp_path / "back")
    failures.append(caught.value)
    with pytest.raises(StorageUnavailable) as caught:
        await storage.exists("a.csv")
    failures.append(caught.value)
    with pytest.raises(StorageUnavailable) as caught:
        await storage.check()
    failures.append(caught.value)

    # botocore names the endpoint: the log says it, the detail (which a client may see) not.
    assert {failure.detail for failure in failures} == {"object storage could not be reached"}
    assert all(isinstance(failure.__cause__, Exception) for failure in failures)
    logged = [r for r in caplog.records if r.name == "debtflow.s3"]
    assert len(logged) == 4
    assert all(r.levelno == logging.WARNING for r in logged)
    assert logged[0].__dict__["key"] == "a.csv"
    assert closed in logged[0].__dict__["reason"]


async def test_local_storage_whose_directory_cannot_be_made_is_unavailable(
    links: SignedLinks, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    storage = LocalObjectStorage(tmp_path / "a-file" / "objects", links)

    with pytest.raises(StorageUnavailable) as caught:
        await storage.check()
    assert str(tmp_path) not in caught.value.detail


async def test_local_storage_that_cannot_write_names_no_path_of_ours(
    links: SignedLinks,
    tmp_path: Path,
    upload: Callable[[bytes], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A full disk or a read-only mount fails the same way: an OSError whose text has the path.
    (tmp_path / "a-file").write_bytes(b"")
    storage = LocalObjectStorage(tmp_path / "a-file" / "objects", links)

    with pytest.raises(StorageUnavailable) as caught:
        await storage.put_file("agency/run.csv", upload(b"x"), content_type="text/csv")

    assert caught.value.detail == "object storage could not be used"
    assert isinstance(caught.value.__cause__, OSError)
    [logged] = [r for r in caplog.records if r.name == "debtflow.local"]
    assert logged.levelno == logging.ERROR
    assert logged.__dict__["key"] == "agency/run.csv"
    assert str(tmp_path / "a-file") in logged.__dict__["reason"]
