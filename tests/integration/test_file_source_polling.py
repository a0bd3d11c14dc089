"""Polling an SFTP file source for real: OpenSSH's sshd with a pinned host key and key
auth, moto's S3 for the backups, the poll task run by name on an in-process broker with
the worker's retry policy (shortened), and SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest
from dishka import AsyncContainer, Provider, Scope, provide
from dishka.integrations.taskiq import setup_dishka
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import InMemoryBroker
from taskiq.kicker import AsyncKicker

import debtflow_worker.tasks  # noqa: F401  (declares the tasks on the shared broker)
from debtflow_adapters.composition import make_container
from debtflow_adapters.memory import FixedClock
from debtflow_adapters.s3 import S3Config
from debtflow_adapters.settings import Settings
from debtflow_adapters.sftp.file_sources import SftpFileSourceReader
from debtflow_adapters.taskiq.retries import RetryMiddleware
from debtflow_core.actor import Actor
from debtflow_core.domain.imports import FileSource, FileSourceKind, ImportStatus
from debtflow_core.errors import SourceUnavailable
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.file_sources import FileSourceReader, RemoteFile
from debtflow_core.use_cases.accounts import ListAccounts
from debtflow_core.use_cases.agencies import CreateAgency, NewAgency
from debtflow_core.use_cases.file_sources import (
    POLL_FILE_SOURCE,
    CreateFileSource,
    FetchFileSource,
    NewFileSource,
)
from debtflow_core.use_cases.imports import ListImportRuns
from tests.support.imports import placement_text
from tests.support.sshd import SshServer

NOW = datetime(2026, 6, 3, 14, 5, tzinfo=UTC)
SECRET_ENV = "DEBTFLOW_SOURCE_SECRET_ACME__SFTP"
RETRIES = 3


class CountingReader(FileSourceReader):
    """The real SFTP reader, counting the polls that reach it."""

    def __init__(self) -> None:
        self._reader = SftpFileSourceReader(timeout_seconds=3)
        self.listings = 0

    async def list_files(self, source: FileSource) -> list[RemoteFile]:
        self.listings += 1
        return await self._reader.list_files(source)

    async def download(self, source: FileSource, name: str, destination: Path) -> None:
        await self._reader.download(source, name, destination)

    async def archive(self, source: FileSource, name: str) -> None:
        await self._reader.archive(source, name)


class Overrides(Provider):
    def __init__(self, reader: CountingReader) -> None:
        super().__init__()
        self._reader = reader

    @provide(scope=Scope.APP, override=True)
    def clock(self) -> Clock:
        return FixedClock(NOW, tick=timedelta(milliseconds=1))

    @provide(scope=Scope.APP, override=True)
    def file_sources(self) -> FileSourceReader:
        return self._reader


class Agency:
    def __init__(
        self, container: AsyncContainer, broker: InMemoryBroker, reader: CountingReader
    ) -> None:
        self.container = container
        self.broker = broker
        self.reader = reader
        self.admin: Actor

    async def run(self, use_case: type[Any], *args: Any) -> Any:
        async with self.container() as request:
            return await (await request.get(use_case)).execute(*args)

    async def poll(self, source: FileSource) -> Any:
        """Send the poll task by name, as the API and the scheduler do; its result."""
        sent = await AsyncKicker(POLL_FILE_SOURCE, self.broker, {}).kiq(source_id=str(source.id))
        return await sent.wait_result(timeout=60)

    async def settle(self) -> None:
        """Let the retries waiting in this process run out."""
        for _ in range(100):
            await self.broker.wait_all()
            await asyncio.sleep(0.05)

    async def runs(self) -> list[Any]:
        return (await self.run(ListImportRuns, self.admin)).items

    async def accounts(self) -> list[str]:
        return sorted(
            account.external_id for account in (await self.run(ListAccounts, self.admin)).items
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, migrated_sqlite_template: Path, tmp_path: Path
) -> str:
    if request.param == "sqlite":
        shutil.copyfile(migrated_sqlite_template, tmp_path / "debtflow.db")
        return f"sqlite:///{tmp_path / 'debtflow.db'}"
    engine: AsyncEngine = request.getfixturevalue("postgres_engine")
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def bucket_objects(s3_bucket: S3Config):
    client = boto3.session.Session().client(
        "s3",
        region_name=s3_bucket.region,
        endpoint_url=s3_bucket.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def objects() -> dict[str, bytes]:
        listed = client.list_objects_v2(Bucket=s3_bucket.bucket).get("Contents", [])
        return {
            item["Key"]: client.get_object(Bucket=s3_bucket.bucket, Key=item["Key"])["Body"].read()
            for item in listed
        }

    return objects


@pytest.fixture
async def agency(
    database_url: str, s3_bucket: S3Config, sshd: SshServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Agency]:
    monkeypatch.setenv(SECRET_ENV, sshd.ed25519_key)
    settings = Settings(
        database_url=database_url,
        storage_url=f"s3://{s3_bucket.bucket}",
        s3_region=s3_bucket.region,
        s3_endpoint_url=s3_bucket.endpoint_url,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )
    reader = CountingReader()
    container = make_container(settings, Overrides(reader))
    broker = InMemoryBroker().with_middlewares(
        RetryMiddleware(default_retry_count=RETRIES, default_delay=0.05, use_delay_exponent=True)
    )
    assert isinstance(broker, InMemoryBroker)
    setup_dishka(container, broker)
    await broker.startup()
    agency = Agency(container, broker, reader)
    created = await agency.run(CreateAgency, NewAgency(slug="acme", name="Acme"))
    agency.admin = Actor.system(created.id)
    yield agency
    await broker.shutdown()
    await container.close()


async def sftp_source(agency: Agency, sshd: SshServer, **changes: Any) -> FileSource:
    drop = f"/drop/{uuid.uuid4().hex[:8]}"
    command = NewFileSource(
        name=f"Creditor {drop}",
        kind=FileSourceKind.SFTP,
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        secret_env=SECRET_ENV,
        host_key=sshd.host_key,
        directory=drop,
        archive_directory=f"{drop}/done",
    )
    return await agency.run(
        CreateFileSource, agency.admin, msgspec.structs.replace(command, **changes)
    )


def put_settled(sshd: SshServer, path: str, content: bytes) -> None:
    """Put a file modified an hour before the test's clock: long past the quiet period a
    poll waits for (a file modified later may still be uploading, and is left)."""
    settled = (NOW - timedelta(hours=1)).timestamp()
    os.utime(sshd.put(path, content), (settled, settled))


async def test_a_poll_imports_backs_up_and_archives_and_a_second_poll_imports_nothing_new(
    agency: Agency, sshd: SshServer, bucket_objects
):
    source = await sftp_source(agency, sshd)
    content = placement_text(3).encode()
    put_settled(sshd, f"{source.directory}/placements-1.csv", content)

    result = await agency.poll(source)

    assert not result.is_err, result.error
    [run] = await agency.runs()
    assert result.return_value == {str(run.id): "succeeded"}
    assert run.status is ImportStatus.SUCCEEDED
    assert (run.file_source_id, run.rows_created) == (source.id, 3)
    assert len(await agency.accounts()) == 3
    key = f"{agency.admin.agency_id}/{source.id}/2026/06/03/{run.sha256}-placements-1.csv"
    assert run.storage_key == key
    assert bucket_objects() == {key: content}
    assert not sshd.local(f"{source.directory}/placements-1.csv").exists()
    assert sshd.local(f"{source.directory}/done/placements-1.csv").read_bytes() == content

    # The same content again, under another name: no second import, and archived too.
    put_settled(sshd, f"{source.directory}/placements-again.csv", content)
    again = await agency.poll(source)

    assert not again.is_err, again.error
    assert again.return_value == {str(run.id): "succeeded"}  # the earlier run
    assert [r.id for r in await agency.runs()] == [run.id]
    assert len(await agency.accounts()) == 3
    assert sshd.local(f"{source.directory}/done/placements-again.csv").exists()
    assert await agency.poll(source) is not None  # an empty drop: nothing to do
    assert len(await agency.runs()) == 1


async def test_a_poison_file_ends_as_a_failed_run_and_the_next_file_still_imports(
    agency: Agency, sshd: SshServer
):
    source = await sftp_source(agency, sshd)
    put_settled(sshd, f"{source.directory}/a-broken.csv", b"no,header,we,know\n1,2,3,4\n")
    put_settled(sshd, f"{source.directory}/b-good.csv", placement_text(2).encode())

    result = await agency.poll(source)

    runs = {run.file_name: run for run in await agency.runs()}
    assert result.return_value == {
        str(runs["a-broken.csv"].id): "failed",
        str(runs["b-good.csv"].id): "succeeded",
    }
    failed = runs["a-broken.csv"]
    assert "required columns are missing" in (failed.failure_reason or "")
    assert sshd.local(f"{source.directory}/a-broken.csv").exists()  # left for a person
    assert len(await agency.accounts()) == 2


async def test_a_file_named_in_another_encoding_does_not_stop_the_poll(
    agency: Agency, sshd: SshServer
):
    source = await sftp_source(agency, sshd)
    put_settled(sshd, f"{source.directory}/b-good.csv", placement_text(2).encode())
    odd = os.path.join(os.fsencode(sshd.local(source.directory)), b"M\xe4rz.csv")  # CP1252
    with open(odd, "wb") as file:
        file.write(placement_text(1).encode())

    result = await agency.poll(source)

    assert not result.is_err, result.error
    [run] = await agency.runs()
    assert (run.file_name, run.status) == ("b-good.csv", ImportStatus.SUCCEEDED)
    assert os.path.exists(odd)  # left for a person to rename


async def test_a_file_modified_within_the_quiet_period_is_left_on_the_source(
    agency: Agency, sshd: SshServer, bucket_objects
):
    source = await sftp_source(agency, sshd)
    path = f"{source.directory}/placements-1.csv"
    recent = (NOW - timedelta(seconds=10)).timestamp()
    os.utime(sshd.put(path, placement_text(2).encode()), (recent, recent))

    result = await agency.poll(source)

    assert not result.is_err, result.error
    assert result.return_value == {}
    assert await agency.runs() == []
    assert bucket_objects() == {}
    assert sshd.local(path).exists()


async def test_a_changed_host_key_is_refused_with_a_clear_reason_and_nothing_written(
    agency: Agency, sshd: SshServer, bucket_objects
):
    source = await sftp_source(agency, sshd, host_key=sshd.other_host_key)
    sshd.put(f"{source.directory}/placements-1.csv", placement_text(2).encode())

    with pytest.raises(SourceUnavailable, match="did not match the pinned one"):
        await agency.run(FetchFileSource, source.id)

    assert await agency.runs() == []
    assert await agency.accounts() == []
    assert bucket_objects() == {}
    assert sshd.local(f"{source.directory}/placements-1.csv").exists()


async def test_a_source_that_is_down_is_retried_then_given_up_with_nothing_written(
    agency: Agency, sshd: SshServer, bucket_objects, unused_tcp_port: int
):
    source = await sftp_source(agency, sshd, port=unused_tcp_port)

    await AsyncKicker(POLL_FILE_SOURCE, agency.broker, {}).kiq(source_id=str(source.id))
    await agency.settle()

    assert agency.reader.listings == RETRIES
    assert await agency.runs() == []
    assert bucket_objects() == {}
