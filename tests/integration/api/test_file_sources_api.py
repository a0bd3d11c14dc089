"""``/v1/file-sources`` over HTTP on SQLite and PostgreSQL: CRUD, problem+json, polling."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_adapters.memory.job_queue import InMemoryJobQueue
from debtflow_core.domain.imports import FileSourceKind
from debtflow_core.use_cases.file_sources import CreateFileSource, NewFileSource
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, KeptJobs, TestAdapters, make_settings

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SFTP = {
    "name": "First Bank drop",
    "kind": "sftp",
    "host": "sftp.firstbank.example",
    "username": "acme",
    "secret_env": "DEBTFLOW_SOURCE_SECRET_ALPHA__FIRSTBANK",
    "host_key": HOST_KEY,
    "directory": "/outbox",
    "archive_directory": "/outbox/done",
    "column_mapping": {"Acct Number": "account_id"},
}


async def test_an_admin_creates_reads_changes_and_deactivates_a_source(api: Api, alpha):
    admin = alpha.headers["admin"]
    created = await api.client.post("/v1/file-sources", headers=admin, json=SFTP)
    assert created.status_code == 201, created.text
    source = created.json()
    assert source["secret_env"] == "DEBTFLOW_SOURCE_SECRET_ALPHA__FIRSTBANK"
    assert (source["port"], source["pattern"], source["schedule"]) == (22, "*.csv", "*/15 * * * *")
    assert source["active"] is True
    path = f"/v1/file-sources/{source['id']}"
    assert created.headers["location"] == path

    assert (await api.client.get(path, headers=admin)).json() == source
    listed = await api.client.get("/v1/file-sources", headers=admin)
    assert listed.json() == {"items": [source]}

    changed = await api.client.patch(
        path, headers=admin, json={"schedule": "0 6 * * 1-5", "archive_directory": None}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**source, "schedule": "0 6 * * 1-5", "archive_directory": None}

    deactivated = await api.client.post(f"{path}/deactivate", headers=admin)
    assert deactivated.status_code == 200
    assert deactivated.json()["active"] is False
    audit = await api.client.get("/v1/audit-log", headers=admin, params={"entity_id": source["id"]})
    assert sorted(entry["action"] for entry in audit.json()["items"]) == [
        "file_source.created",
        "file_source.deactivated",
        "file_source.updated",
    ]


async def test_bad_sources_are_problems_that_name_the_field(api: Api, alpha):
    admin = alpha.headers["admin"]
    for changes, field in [
        ({"schedule": "*/15 * * *"}, "schedule"),
        ({"host_key": "AAAAC3NzaC1lZDI1NTE5"}, "host_key"),
        ({"host": None}, "host"),
        ({"kind": "local", "host": None, "username": None, "secret_env": None}, "host_key"),
    ]:
        refused = await api.client.post("/v1/file-sources", headers=admin, json=SFTP | changes)
        assert refused.status_code == 422, (changes, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert [error["field"] for error in refused.json()["errors"]] == [field]
    unknown = await api.client.post("/v1/file-sources", headers=admin, json=SFTP | {"secret": "x"})
    assert unknown.status_code == 400
    assert (await api.client.post("/v1/file-sources", headers=admin, json=SFTP)).status_code == 201
    taken = await api.client.post("/v1/file-sources", headers=admin, json=SFTP)
    assert taken.status_code == 409
    assert taken.json()["type"].endswith(":conflict")


async def test_a_secret_env_outside_the_reserved_prefix_is_a_422_naming_the_field(api: Api, alpha):
    admin = alpha.headers["admin"]
    exfiltration = SFTP | {"host": "attacker.example", "secret_env": "DEBTFLOW_JWT_SECRET"}
    refused = await api.client.post("/v1/file-sources", headers=admin, json=exfiltration)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    [error] = refused.json()["errors"]
    assert error["field"] == "secret_env"
    assert "DEBTFLOW_SOURCE_SECRET_ALPHA__" in error["message"]
    beta = await api.tenant("beta")
    theirs = SFTP | {"host": "attacker.example", "secret_env": "DEBTFLOW_SOURCE_SECRET_BETA__KEY"}
    refused = await api.client.post("/v1/file-sources", headers=admin, json=theirs)
    assert [e["field"] for e in refused.json()["errors"]] == ["secret_env"]
    own = SFTP | {"secret_env": "DEBTFLOW_SOURCE_SECRET_BETA__KEY"}
    accepted = await api.client.post("/v1/file-sources", headers=beta.headers["admin"], json=own)
    assert accepted.status_code == 201, accepted.text
    assert (await api.client.get("/v1/file-sources", headers=admin)).json() == {"items": []}

    source = (await api.client.post("/v1/file-sources", headers=admin, json=SFTP)).json()
    changed = await api.client.patch(
        f"/v1/file-sources/{source['id']}", headers=admin, json={"secret_env": "PATH"}
    )
    assert changed.status_code == 422, changed.text
    assert [error["field"] for error in changed.json()["errors"]] == ["secret_env"]


async def test_other_agencies_and_other_roles_get_nothing(api: Api, alpha):
    beta = await api.tenant("beta")
    created = await api.client.post("/v1/file-sources", headers=alpha.headers["admin"], json=SFTP)
    path = f"/v1/file-sources/{created.json()['id']}"
    assert (await api.client.get(path, headers=beta.headers["admin"])).status_code == 404
    assert (await api.client.get(path, headers=alpha.headers["collector"])).status_code == 403
    listed = await api.client.get("/v1/file-sources", headers=beta.headers["admin"])
    assert listed.json() == {"items": []}


async def test_poll_now_queues_the_poll_task_and_answers_202(database_url):
    queue = InMemoryJobQueue()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(make_settings(database_url), TestAdapters(clock), KeptJobs(queue))
    async with AsyncTestClient(app) as client:
        api = Api(app, client, clock)
        alpha = await api.tenant("alpha")
        admin = alpha.headers["admin"]
        source = (await client.post("/v1/file-sources", headers=admin, json=SFTP)).json()
        path = f"/v1/file-sources/{source['id']}"

        polled = await client.post(f"{path}/poll", headers=admin)

        assert polled.status_code == 202, polled.text
        assert polled.json()["source_id"] == source["id"]
        assert polled.json()["task"] == "debtflow.poll_file_source"
        assert queue.jobs == [("debtflow.poll_file_source", {"source_id": source["id"]})]
        await client.post(f"{path}/deactivate", headers=admin)
        inactive = await client.post(f"{path}/poll", headers=admin)
        assert inactive.status_code == 409
        assert "inactive" in inactive.json()["detail"]
        assert len(queue.jobs) == 1


async def test_local_sources_are_refused_up_front_while_no_sources_root_is_set(
    database_url: str, sources_root: Path
):
    queue = InMemoryJobQueue()
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    local = {"name": "L", "kind": "local", "directory": "alpha/drop"}
    # A local source stored while the installation had a sources root.
    enabled = create_app(
        make_settings(database_url, sources_root=str(sources_root)), TestAdapters(clock)
    )
    async with AsyncTestClient(enabled) as client:
        seeding = Api(enabled, client, clock)
        tenant = await seeding.tenant("alpha")
        before = await seeding.run(
            CreateFileSource,
            tenant.admin,
            NewFileSource(name="Old", kind=FileSourceKind.LOCAL, directory="alpha/drop"),
        )

    app = create_app(make_settings(database_url), TestAdapters(clock), KeptJobs(queue))
    async with AsyncTestClient(app) as client:
        token = (await Api(app, client, clock).sign_in("admin@alpha.example"))["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        refused = await client.post("/v1/file-sources", headers=admin, json=local)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        [error] = refused.json()["errors"]
        assert error["field"] == "kind"
        assert "DEBTFLOW_SOURCES_ROOT" in error["message"]

        sftp = (await client.post("/v1/file-sources", headers=admin, json=SFTP)).json()
        to_local = await client.patch(
            f"/v1/file-sources/{sftp['id']}",
            headers=admin,
            json={
                "kind": "local",
                "host": None,
                "username": None,
                "secret_env": None,
                "host_key": None,
                "directory": "alpha/outbox",
                "archive_directory": "alpha/outbox/done",
            },
        )
        assert to_local.status_code == 422, to_local.text
        assert [error["field"] for error in to_local.json()["errors"]] == ["kind"]

        polled = await client.post(f"/v1/file-sources/{before.id}/poll", headers=admin)
        assert polled.status_code == 409, polled.text
        assert "DEBTFLOW_SOURCES_ROOT" in polled.json()["detail"]
        assert queue.jobs == []
        off = await client.post(f"/v1/file-sources/{before.id}/deactivate", headers=admin)
        assert off.status_code == 200, off.text


async def test_a_local_directory_outside_the_sources_root_is_a_422(api: Api, alpha):
    refused = await api.client.post(
        "/v1/file-sources",
        headers=alpha.headers["admin"],
        json={"name": "L", "kind": "local", "directory": "drop/../../etc"},
    )
    assert refused.status_code == 422, refused.text
    assert [error["field"] for error in refused.json()["errors"]] == ["directory"]


async def test_a_local_directory_outside_the_agencys_folder_is_a_422_naming_it(api: Api, alpha):
    admin = alpha.headers["admin"]
    for field in ("directory", "archive_directory"):
        body = {"name": "L", "kind": "local", "directory": "alpha/inbound", field: "beta/inbound"}
        refused = await api.client.post("/v1/file-sources", headers=admin, json=body)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        [error] = refused.json()["errors"]
        assert error["field"] == field
        assert "agency's own folder" in error["message"]
        assert "'alpha/inbound'" in error["message"]
    created = await api.client.post(
        "/v1/file-sources",
        headers=admin,
        json={"name": "L", "kind": "local", "directory": "alpha/inbound"},
    )
    assert created.status_code == 201, created.text
    moved = await api.client.patch(
        f"/v1/file-sources/{created.json()['id']}",
        headers=admin,
        json={"archive_directory": "beta/inbound"},
    )
    assert moved.status_code == 422, moved.text
    assert [error["field"] for error in moved.json()["errors"]] == ["archive_directory"]
    assert (await api.client.get("/v1/file-sources", headers=admin)).json() == {
        "items": [created.json()]
    }


async def test_a_nul_delimiter_or_an_out_of_range_port_is_a_422_naming_the_field(api: Api, alpha):
    admin = alpha.headers["admin"]
    local = {"name": "L", "kind": "local", "directory": "alpha/drop"}
    for body in (SFTP, local):
        created = await api.client.post("/v1/file-sources", headers=admin, json=body)
        assert created.status_code == 201, created.text
        path = f"/v1/file-sources/{created.json()['id']}"
        for changes, field in [({"delimiter": "\u0000"}, "delimiter"), ({"port": 2**40}, "port")]:
            refused = await api.client.patch(path, headers=admin, json=changes)
            assert refused.status_code == 422, (body["kind"], changes, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert [error["field"] for error in refused.json()["errors"]] == [field]
        assert (await api.client.get(path, headers=admin)).json() == created.json()
