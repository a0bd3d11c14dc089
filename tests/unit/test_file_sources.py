"""File-source use cases on the in-memory adapters: validation, roles, audit, polling."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_core.domain.imports import FileSource, FileSourceKind, is_agency_secret_name
from debtflow_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from debtflow_core.use_cases.file_sources import (
    POLL_FILE_SOURCE,
    CreateFileSource,
    DeactivateFileSource,
    FetchFileSource,
    FileSourceChanges,
    FileSourcePolicy,
    GetFileSource,
    ListFileSources,
    NewFileSource,
    PollFileSource,
    UpdateFileSource,
    check_cron,
    check_host_key,
)

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def new_sftp(**changes) -> NewFileSource:
    command = NewFileSource(
        name="Creditor drop",
        kind=FileSourceKind.SFTP,
        host="sftp.creditor.example",
        username="acme",
        secret_env="DEBTFLOW_SOURCE_SECRET_ALPHA__SFTP",
        host_key=HOST_KEY + " root@creditor",
        directory="/outbox",
    )
    return msgspec.structs.replace(command, **changes)


@pytest.fixture
async def alpha(world):
    return await world.agency("alpha")


async def test_an_admin_creates_an_sftp_source_with_defaults_and_an_audit_entry(world, alpha):
    source = await world.use(CreateFileSource).execute(alpha.admin, new_sftp())
    assert source.host_key == HOST_KEY  # the comment is dropped
    assert (source.port, source.pattern, source.delimiter) == (22, "*.csv", ",")
    assert source.schedule == "*/15 * * * *"
    assert source.active
    assert await world.use(GetFileSource).execute(alpha.admin, source.id) == source
    assert await world.use(ListFileSources).execute(alpha.admin) == [source]
    page = await world.use(QueryAuditLog).execute(alpha.admin, AuditFilters(entity_id=source.id))
    assert [entry.action for entry in page.items] == ["file_source.created"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"host": None}, "host"),
        ({"username": " "}, "username"),
        ({"secret_env": None}, "secret_env"),
        ({"secret_env": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "secret_env"),
        ({"host_key": None}, "host_key"),
        (
            {"host_key": "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"},
            "host_key",
        ),
        ({"host_key": "ssh-ed25519 not-base64!"}, "host_key"),
        ({"host_key": "ssh-rsa " + HOST_KEY.split()[1]}, "host_key"),
        ({"port": 0}, "port"),
        ({"schedule": "every 15 minutes"}, "schedule"),
        ({"schedule": "*/15 * * *"}, "schedule"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "0 9 * * 1-9"}, "schedule"),
        ({"schedule": "*/0 * * * *"}, "schedule"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"delimiter": "\x00"}, "delimiter"),
        ({"port": 65536}, "port"),
        ({"pattern": "../*.csv"}, "pattern"),
        ({"name": " "}, "name"),
        ({"column_mapping": {"Acct": "no_such_column"}}, "column_mapping"),
    ],
)
async def test_invalid_sources_are_refused_with_the_field(world, alpha, changes, field):
    with pytest.raises(ValidationFailed) as refused:
        await world.use(CreateFileSource).execute(alpha.admin, new_sftp(**changes))
    assert refused.value.field == field
    assert await world.use(ListFileSources).execute(alpha.admin) == []


async def test_a_local_source_needs_a_directory_and_no_sftp_fields(world, alpha):
    create = world.use(CreateFileSource)
    local = NewFileSource(name="Local", kind=FileSourceKind.LOCAL)
    with pytest.raises(ValidationFailed) as refused:
        await create.execute(alpha.admin, local)
    assert refused.value.field == "directory"
    with pytest.raises(ValidationFailed) as refused:
        await create.execute(
            alpha.admin, msgspec.structs.replace(local, directory="alpha/in", host="x")
        )
    assert refused.value.field == "host"
    source = await create.execute(alpha.admin, msgspec.structs.replace(local, directory="alpha/in"))
    assert (source.kind, source.directory, source.host) == (FileSourceKind.LOCAL, "alpha/in", None)


@pytest.mark.parametrize(
    "name",
    [
        "DEBTFLOW_JWT_SECRET",
        "DEBTFLOW_DATABASE_URL",
        "DEBTFLOW_S3_SECRET_ACCESS_KEY",
        "PATH",
        "ACME_SFTP_KEY",
        "DEBTFLOW_SOURCE_SECRET_",
        "debtflow_source_secret_ACME",
        "Debtflow_Source_Secret_ACME",
        "DEBTFLOW_SOURCE_SECRETS_ACME",
        "XDEBTFLOW_SOURCE_SECRET_ACME",
        "DEBTFLOW_SOURCE_SECRET_ACME-SFTP",
        "DEBTFLOW_SOURCE_SECRET_ACME\nDEBTFLOW_JWT_SECRET",
        "DEBTFLOW_SOURCE_SECRET_ALPHA_SFTP",  # the agency's slug, but not its prefix
        "DEBTFLOW_SOURCE_SECRET_BETA__SFTP",  # another agency's
        "DEBTFLOW_SOURCE_SECRET_ALPHA__",
        "DEBTFLOW_SOURCE_SECRET_ALPHA__sftp",
        "DEBTFLOW_SOURCE_SECRET_ALPHA__A__B",
        "DEBTFLOW_SOURCE_SECRET_ALPHA___SFTP",
        "DEBTFLOW_SOURCE_SECRET_ALPHA__SFTP_",
    ],
)
async def test_secret_env_must_name_a_variable_set_aside_for_source_secrets(world, alpha, name):
    create = world.use(CreateFileSource)
    with pytest.raises(ValidationFailed, match="DEBTFLOW_SOURCE_SECRET_") as refused:
        await create.execute(alpha.admin, new_sftp(secret_env=name))
    assert refused.value.field == "secret_env"
    source = await create.execute(alpha.admin, new_sftp())
    with pytest.raises(ValidationFailed, match="DEBTFLOW_SOURCE_SECRET_") as refused:
        await world.use(UpdateFileSource).execute(
            alpha.admin, source.id, FileSourceChanges(secret_env=name)
        )
    assert refused.value.field == "secret_env"
    assert await world.use(ListFileSources).execute(alpha.admin) == [source]


async def test_a_reserved_secret_name_is_accepted_without_surrounding_spaces(world, alpha):
    source = await world.use(CreateFileSource).execute(
        alpha.admin, new_sftp(secret_env=" DEBTFLOW_SOURCE_SECRET_ALPHA__SFTP_2 ")
    )
    assert source.secret_env == "DEBTFLOW_SOURCE_SECRET_ALPHA__SFTP_2"


@pytest.mark.parametrize(
    ("name", "slug", "mine"),
    [
        ("DEBTFLOW_SOURCE_SECRET_ACME_EAST__SFTP", "acme-east", True),
        ("DEBTFLOW_SOURCE_SECRET_ACME_EAST__SFTP", "acme", False),
        ("DEBTFLOW_SOURCE_SECRET_ACME__EAST__SFTP", "acme", False),
        ("DEBTFLOW_SOURCE_SECRET_ACME__EAST_SFTP", "acme", True),
        ("DEBTFLOW_SOURCE_SECRET_ACME__EAST_SFTP", "acme-east", False),
        ("DEBTFLOW_SOURCE_SECRET_A__B__X", "a--b", True),
        ("DEBTFLOW_SOURCE_SECRET_A__B__X", "a", False),
        ("DEBTFLOW_SOURCE_SECRET_7_ELEVEN__KEY_1", "7-eleven", True),
    ],
)
def test_a_secret_name_belongs_to_one_agency_only(name, slug, mine):
    assert is_agency_secret_name(name, slug) is mine


def test_cron_and_host_key_checks_accept_what_the_scheduler_and_reader_read():
    assert check_cron(" 0  9-17/2 1,15 * 1-5 ") == "0 9-17/2 1,15 * 1-5"
    assert check_cron("*/15 * * * *") == "*/15 * * * *"
    assert check_host_key(HOST_KEY + " comment") == HOST_KEY


async def test_names_are_unique_in_an_agency(world, alpha):
    await world.use(CreateFileSource).execute(alpha.admin, new_sftp())
    with pytest.raises(Conflict):
        await world.use(CreateFileSource).execute(alpha.admin, new_sftp())


async def test_only_admins_manage_sources_and_other_agencies_see_nothing(world, alpha):
    beta = await world.agency("beta")
    source = await world.use(CreateFileSource).execute(alpha.admin, new_sftp())
    for actor in (alpha.collector, alpha.readonly):
        with pytest.raises(PermissionDenied):
            await world.use(CreateFileSource).execute(actor, new_sftp(name="x"))
        with pytest.raises(PermissionDenied):
            await world.use(ListFileSources).execute(actor)
        with pytest.raises(PermissionDenied):
            await world.use(GetFileSource).execute(actor, source.id)
    with pytest.raises(NotFound):
        await world.use(GetFileSource).execute(beta.admin, source.id)
    with pytest.raises(NotFound):
        await world.use(DeactivateFileSource).execute(beta.admin, source.id)
    assert await world.use(ListFileSources).execute(beta.admin) == []


async def test_updates_are_validated_against_the_result_and_audited(world, alpha):
    source = await world.use(CreateFileSource).execute(alpha.admin, new_sftp())
    update = world.use(UpdateFileSource)
    changed = await update.execute(
        alpha.admin, source.id, FileSourceChanges(schedule="0 * * * *", port=2222)
    )
    assert (changed.schedule, changed.port, changed.host) == ("0 * * * *", 2222, source.host)
    with pytest.raises(ValidationFailed) as refused:
        await update.execute(alpha.admin, source.id, FileSourceChanges(kind=FileSourceKind.LOCAL))
    assert refused.value.field == "host"
    to_local = FileSourceChanges(
        kind=FileSourceKind.LOCAL, host=None, username=None, secret_env=None, host_key=None
    )
    with pytest.raises(ValidationFailed) as refused:
        await update.execute(alpha.admin, source.id, to_local)
    assert refused.value.field == "directory"  # the sftp source's "/outbox"
    local = await update.execute(
        alpha.admin, source.id, msgspec.structs.replace(to_local, directory="alpha/outbox")
    )
    assert (local.kind, local.directory) == (FileSourceKind.LOCAL, "alpha/outbox")
    assert await update.execute(alpha.admin, source.id, FileSourceChanges()) == local
    page = await world.use(QueryAuditLog).execute(alpha.admin, AuditFilters(entity_id=source.id))
    assert sorted(entry.action for entry in page.items) == [
        "file_source.created",
        "file_source.updated",
        "file_source.updated",
    ]


async def test_a_poll_is_handed_to_the_workers_unless_the_source_is_inactive(world, alpha):
    queue = InMemoryJobQueue()
    poll = PollFileSource(world.uow, world.clock, queue, world.source_policy)
    source = await world.use(CreateFileSource).execute(alpha.admin, new_sftp())
    requested = await poll.execute(alpha.admin, source.id)
    assert (requested.source_id, requested.task) == (source.id, POLL_FILE_SOURCE)
    assert queue.jobs == [(POLL_FILE_SOURCE, {"source_id": str(source.id)})]
    with pytest.raises(PermissionDenied):
        await poll.execute(alpha.collector, source.id)
    with pytest.raises(NotFound):
        await poll.execute(alpha.admin, uuid.uuid4())
    await world.use(DeactivateFileSource).execute(alpha.admin, source.id)
    with pytest.raises(Conflict, match="inactive"):
        await poll.execute(alpha.admin, source.id)
    assert len(queue.jobs) == 1


class RecordingFetch:
    """Stands in for FetchPlacementFiles: records the sources it is asked to fetch."""

    def __init__(self) -> None:
        self.fetched: list[FileSource] = []

    async def execute(self, actor, source: FileSource) -> list:
        self.fetched.append(source)
        return []


LOCAL = NewFileSource(name="Local", kind=FileSourceKind.LOCAL, directory="alpha/in")


async def test_a_local_source_is_refused_on_kind_while_local_sources_are_disabled(world, alpha):
    world.source_policy = FileSourcePolicy(local_sources=False)
    create = world.use(CreateFileSource)
    for command in (LOCAL, NewFileSource(name="No directory", kind=FileSourceKind.LOCAL)):
        with pytest.raises(ValidationFailed, match="DEBTFLOW_SOURCES_ROOT") as refused:
            await create.execute(alpha.admin, command)
        assert refused.value.field == "kind"
    source = await create.execute(alpha.admin, new_sftp())
    with pytest.raises(ValidationFailed, match="not enabled") as refused:
        await world.use(UpdateFileSource).execute(
            alpha.admin,
            source.id,
            FileSourceChanges(
                kind=FileSourceKind.LOCAL,
                host=None,
                username=None,
                secret_env=None,
                host_key=None,
                directory="alpha/outbox",
            ),
        )
    assert refused.value.field == "kind"
    assert await world.use(ListFileSources).execute(alpha.admin) == [source]


async def test_a_local_source_left_from_before_can_only_be_deactivated_or_changed_once_off(
    world, alpha
):
    source = await world.use(CreateFileSource).execute(alpha.admin, LOCAL)
    world.source_policy = FileSourcePolicy(local_sources=False)
    update = world.use(UpdateFileSource)
    with pytest.raises(ValidationFailed, match="DEBTFLOW_SOURCES_ROOT"):
        await update.execute(alpha.admin, source.id, FileSourceChanges(schedule="0 * * * *"))

    inactive = await world.use(DeactivateFileSource).execute(alpha.admin, source.id)
    renamed = await update.execute(alpha.admin, source.id, FileSourceChanges(name="Old drop"))
    with pytest.raises(ValidationFailed, match="DEBTFLOW_SOURCES_ROOT") as refused:
        await update.execute(alpha.admin, source.id, FileSourceChanges(active=True))
    assert refused.value.field == "kind"
    moved = await update.execute(
        alpha.admin,
        source.id,
        FileSourceChanges(
            kind=FileSourceKind.SFTP,
            host="sftp.creditor.example",
            username="acme",
            secret_env="DEBTFLOW_SOURCE_SECRET_ALPHA__SFTP",
            host_key=HOST_KEY,
            active=True,
        ),
    )
    assert not inactive.active
    assert renamed.name == "Old drop"
    assert (moved.kind, moved.active) == (FileSourceKind.SFTP, True)


async def test_polling_a_source_that_cannot_be_polled_here_is_a_conflict_and_queues_nothing(
    world, alpha
):
    local = await world.use(CreateFileSource).execute(alpha.admin, LOCAL)
    # An sftp source stored before secret names were restricted.
    legacy = msgspec.structs.replace(
        await world.use(CreateFileSource).execute(alpha.admin, new_sftp()),
        secret_env="DEBTFLOW_JWT_SECRET",
    )
    async with world.uow as uow:
        await uow.file_sources.update(legacy)
        await uow.commit()
    queue = InMemoryJobQueue()
    disabled = FileSourcePolicy(local_sources=False)
    poll = PollFileSource(world.uow, world.clock, queue, disabled)

    with pytest.raises(Conflict, match="DEBTFLOW_SOURCES_ROOT"):
        await poll.execute(alpha.admin, local.id)
    with pytest.raises(Conflict, match="DEBTFLOW_SOURCE_SECRET_"):
        await poll.execute(alpha.admin, legacy.id)

    assert queue.jobs == []
    for source in (local, legacy):
        page = await world.use(QueryAuditLog).execute(
            alpha.admin, AuditFilters(entity_id=source.id)
        )
        assert "file_source.poll_requested" not in [entry.action for entry in page.items]


async def test_the_worker_refuses_for_good_a_source_that_cannot_be_polled_here(world, alpha):
    local = await world.use(CreateFileSource).execute(alpha.admin, LOCAL)
    legacy = msgspec.structs.replace(
        await world.use(CreateFileSource).execute(alpha.admin, new_sftp()), secret_env="PATH"
    )
    async with world.uow as uow:
        await uow.file_sources.update(legacy)
        await uow.commit()
    fetch = RecordingFetch()
    disabled = FetchFileSource(world.uow, fetch, FileSourcePolicy(local_sources=False))
    enabled = FetchFileSource(world.uow, fetch, FileSourcePolicy(local_sources=True))

    # ValidationFailed: the worker does not retry it.
    with pytest.raises(ValidationFailed, match="DEBTFLOW_SOURCES_ROOT"):
        await disabled.execute(local.id)
    with pytest.raises(ValidationFailed, match="DEBTFLOW_SOURCE_SECRET_"):
        await enabled.execute(legacy.id)
    assert fetch.fetched == []
    await enabled.execute(local.id)
    assert [source.id for source in fetch.fetched] == [local.id]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"directory": ".."}, "directory"),
        ({"directory": "../etc"}, "directory"),
        ({"directory": "/../etc"}, "directory"),
        ({"directory": "alpha/../../etc"}, "directory"),
        ({"archive_directory": "alpha/in/../../.."}, "archive_directory"),
    ],
)
async def test_a_local_directory_leading_out_of_the_sources_root_is_refused(
    world, alpha, changes, field
):
    with pytest.raises(ValidationFailed, match="sources root") as refused:
        await world.use(CreateFileSource).execute(
            alpha.admin, msgspec.structs.replace(LOCAL, **changes)
        )
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"port": 0}, "port"), ({"port": 2**40}, "port"), ({"delimiter": "\x00"}, "delimiter")],
)
async def test_a_local_source_has_its_port_and_delimiter_checked_too(world, alpha, changes, field):
    create = world.use(CreateFileSource)
    with pytest.raises(ValidationFailed) as refused:
        await create.execute(alpha.admin, msgspec.structs.replace(LOCAL, **changes))
    assert refused.value.field == field
    source = await create.execute(alpha.admin, LOCAL)
    with pytest.raises(ValidationFailed) as refused:
        await world.use(UpdateFileSource).execute(
            alpha.admin, source.id, FileSourceChanges(**changes)
        )
    assert refused.value.field == field
    assert await world.use(ListFileSources).execute(alpha.admin) == [source]


async def test_local_directories_inside_the_sources_root_are_accepted(world, alpha):
    create = world.use(CreateFileSource)
    for name, directory in [
        ("a", "alpha"),
        ("b", "/alpha/tmp"),
        ("c", "alpha/in/../drop"),
        ("d", "alpha/..drop"),
        ("e", "./alpha//in/"),
        ("f", "beta/../alpha/in"),
    ]:
        command = msgspec.structs.replace(
            LOCAL, name=name, directory=directory, archive_directory=f"{directory}/done"
        )
        assert (await create.execute(alpha.admin, command)).directory == directory


@pytest.mark.parametrize(
    "path",
    [
        "beta/inbound",  # another agency's drop
        "/beta",
        "alpha-east/inbound",  # an agency whose slug starts with this one's
        "alph/inbound",
        "/",  # the root itself, every agency's folder in it
        ".",
        "inbound/alpha",  # the slug only further down
        "drop/alpha/inbound",
        "alpha/../beta/inbound",
        "ALPHA/inbound",
        "alpha.old/inbound",
    ],
)
async def test_a_local_directory_outside_the_agencys_folder_is_refused(world, alpha, path):
    await world.agency("beta")
    create = world.use(CreateFileSource)
    for field in ("directory", "archive_directory"):
        with pytest.raises(ValidationFailed, match="agency's own folder") as refused:
            await create.execute(alpha.admin, msgspec.structs.replace(LOCAL, **{field: path}))
        assert refused.value.field == field
        assert "'alpha/inbound'" in refused.value.detail
    source = await create.execute(alpha.admin, LOCAL)
    for field in ("directory", "archive_directory"):
        with pytest.raises(ValidationFailed, match="agency's own folder") as refused:
            await world.use(UpdateFileSource).execute(
                alpha.admin, source.id, FileSourceChanges(**{field: path})
            )
        assert refused.value.field == field
    assert await world.use(ListFileSources).execute(alpha.admin) == [source]


@pytest.mark.parametrize("field", ["directory", "archive_directory"])
async def test_a_local_source_stored_outside_the_agencys_folder_is_never_polled(
    world, alpha, field
):
    # Stored before the rule, or written around the core: acme's drop named by another.
    stored = msgspec.structs.replace(
        await world.use(CreateFileSource).execute(alpha.admin, LOCAL), **{field: "beta/inbound"}
    )
    async with world.uow as uow:
        await uow.file_sources.update(stored)
        await uow.commit()
    queue = InMemoryJobQueue()
    fetch = RecordingFetch()

    with pytest.raises(Conflict, match=f"its {field} 'beta/inbound'.*agency's own folder"):
        await PollFileSource(world.uow, world.clock, queue, world.source_policy).execute(
            alpha.admin, stored.id
        )
    with pytest.raises(ValidationFailed, match="agency's own folder"):
        await FetchFileSource(world.uow, fetch, world.source_policy).execute(stored.id)

    assert queue.jobs == []
    assert fetch.fetched == []


async def test_a_source_stored_before_a_rule_it_breaks_can_still_be_deactivated(world, alpha):
    create = world.use(CreateFileSource)
    stored = [
        msgspec.structs.replace(
            await create.execute(alpha.admin, new_sftp()), secret_env="DEBTFLOW_JWT_SECRET"
        ),
        msgspec.structs.replace(await create.execute(alpha.admin, LOCAL), directory="../etc"),
    ]
    async with world.uow as uow:
        for source in stored:
            await uow.file_sources.update(source)
        await uow.commit()

    for source in stored:
        with pytest.raises(ValidationFailed):
            await world.use(UpdateFileSource).execute(
                alpha.admin, source.id, FileSourceChanges(schedule="0 * * * *")
            )
        deactivated = await world.use(DeactivateFileSource).execute(alpha.admin, source.id)
        assert deactivated == msgspec.structs.replace(source, active=False)
