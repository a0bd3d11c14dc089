"""FileSourceReaders sends each call to the reader of the source's kind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from debtflow_adapters.file_source_readers import FileSourceReaders
from debtflow_adapters.memory.file_sources import InMemoryFileSourceReader
from debtflow_core.domain.imports import FileSource, FileSourceKind
from debtflow_core.errors import SourceUnavailable


def source(kind: FileSourceKind) -> FileSource:
    return FileSource(
        id=uuid.uuid4(),
        agency_id=uuid.uuid4(),
        name="Creditor drop",
        kind=kind,
        host=None,
        port=22,
        username=None,
        secret_env=None,
        host_key=None,
        directory="inbox",
        pattern="*.csv",
        archive_directory=None,
        delimiter=",",
        column_mapping={},
        schedule="*/15 * * * *",
        active=True,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_each_call_goes_to_the_reader_of_the_sources_kind(tmp_path):
    sftp = InMemoryFileSourceReader()
    sftp.make_directory("inbox")
    sftp.put("inbox", "placement.csv", b"external_account_id\n")
    readers = FileSourceReaders({FileSourceKind.SFTP: sftp})

    files = await readers.list_files(source(FileSourceKind.SFTP))
    await readers.download(source(FileSourceKind.SFTP), "placement.csv", tmp_path / "copy")

    assert [file.name for file in files] == ["placement.csv"]
    assert (tmp_path / "copy").read_bytes() == b"external_account_id\n"


async def test_a_kind_without_a_reader_is_refused_with_the_setting_to_change():
    readers = FileSourceReaders({FileSourceKind.SFTP: InMemoryFileSourceReader()})
    with pytest.raises(SourceUnavailable, match="DEBTFLOW_SOURCES_ROOT"):
        await readers.list_files(source(FileSourceKind.LOCAL))
