"""The file-source repository's contract, on every adapter (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from debtflow_core.domain.agency import Agency
from debtflow_core.domain.imports import FileSource, FileSourceKind
from debtflow_core.errors import Conflict

T0 = datetime(2026, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def agency(slug: str) -> Agency:
    return Agency(id=uuid.uuid4(), slug=slug, name=slug.title(), created_at=T0)


def sftp_source(agency_id: uuid.UUID, name: str = "Creditor drop", **changes) -> FileSource:
    source = FileSource(
        id=uuid.uuid4(),
        agency_id=agency_id,
        name=name,
        kind=FileSourceKind.SFTP,
        host="sftp.creditor.example",
        port=2222,
        username="acme",
        secret_env="DEBTFLOW_SOURCE_SECRET_ACME_SFTP",
        host_key=HOST_KEY,
        directory="/outbox",
        pattern="placements-*.csv",
        archive_directory="/outbox/done",
        delimiter=";",
        column_mapping={"Acct No": "account_id", "Balance": "placed_balance"},
        schedule="*/15 * * * *",
        active=True,
        created_at=T0,
    )
    return msgspec.structs.replace(source, **changes)


@pytest.fixture
async def agencies(uow_factory) -> tuple[Agency, Agency]:
    alpha, beta = agency("alpha"), agency("beta")
    async with uow_factory() as uow:
        await uow.agencies.add(alpha)
        await uow.agencies.add(beta)
        await uow.commit()
    return alpha, beta


async def test_every_field_round_trips(uow_factory, agencies):
    alpha, _ = agencies
    sftp = sftp_source(alpha.id)
    local = sftp_source(
        alpha.id,
        "Local drop",
        kind=FileSourceKind.LOCAL,
        host=None,
        port=22,
        username=None,
        secret_env=None,
        host_key=None,
        archive_directory=None,
        column_mapping={},
        active=False,
    )
    async with uow_factory() as uow:
        await uow.file_sources.add(sftp)
        await uow.file_sources.add(local)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.file_sources.get(sftp.id) == sftp
        assert await uow.file_sources.get(local.id) == local
        assert await uow.file_sources.get(uuid.uuid4()) is None


async def test_lists_are_by_agency_and_name_and_active_ones_span_agencies(uow_factory, agencies):
    alpha, beta = agencies
    second = sftp_source(alpha.id, "b drop")
    first = sftp_source(alpha.id, "a drop")
    idle = sftp_source(alpha.id, "c drop", active=False)
    other = sftp_source(beta.id, "a drop")
    async with uow_factory() as uow:
        for source in (second, first, idle, other):
            await uow.file_sources.add(source)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.file_sources.list(alpha.id) == [first, second, idle]
        assert await uow.file_sources.list(beta.id) == [other]
        assert await uow.file_sources.list_active() == sorted(
            [first, second, other], key=lambda s: s.id
        )


async def test_names_are_unique_within_an_agency(uow_factory, agencies):
    alpha, beta = agencies
    taken = sftp_source(alpha.id, "Drop")
    renamed = sftp_source(alpha.id, "Other")
    async with uow_factory() as uow:
        await uow.file_sources.add(taken)
        await uow.file_sources.add(renamed)
        await uow.file_sources.add(sftp_source(beta.id, "Drop"))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(Conflict, match="named 'Drop'"):
            await uow.file_sources.add(sftp_source(alpha.id, "Drop"))
    async with uow_factory() as uow:
        with pytest.raises(Conflict, match="named 'Drop'"):
            await uow.file_sources.update(msgspec.structs.replace(renamed, name="Drop"))
    async with uow_factory() as uow:
        assert await uow.file_sources.get(renamed.id) == renamed


async def test_update_saves_everything_but_identity_and_creation(uow_factory, agencies):
    alpha, beta = agencies
    source = sftp_source(alpha.id)
    async with uow_factory() as uow:
        await uow.file_sources.add(source)
        await uow.commit()
    changed = msgspec.structs.replace(
        source,
        name="Renamed",
        host="10.0.0.7",
        port=22,
        directory="/in",
        pattern="*.txt",
        archive_directory=None,
        delimiter=",",
        column_mapping={},
        schedule="0 * * * *",
        active=False,
    )
    async with uow_factory() as uow:
        await uow.file_sources.update(
            msgspec.structs.replace(changed, agency_id=beta.id, created_at=datetime.now(UTC))
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.file_sources.get(source.id) == changed


async def test_nothing_is_kept_without_a_commit(uow_factory, agencies):
    alpha, _ = agencies
    source = sftp_source(alpha.id)
    async with uow_factory() as uow:
        await uow.file_sources.add(source)
        assert await uow.file_sources.get(source.id) == source
    async with uow_factory() as uow:
        assert await uow.file_sources.get(source.id) is None
