"""Placement imports over the API, through the real app on SQLite and PostgreSQL: uploads
imported by the in-process broker's worker task, runs and their errors, signed links."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient

from debtflow_adapters.memory import FixedClock
from debtflow_core.ports.object_storage import ObjectStorage
from debtflow_http.app import create_app
from tests.integration.api.conftest import START, Api, Tenant, TestAdapters, make_settings
from tests.support.imports import placement_text

FINISHED = ("succeeded", "partially_failed", "failed")
MAX_UPLOAD = 16 * 1024


@asynccontextmanager
async def serving(database_url: str, storage_url: str, **settings: Any) -> AsyncIterator[Api]:
    """The app on ``storage_url``, with a small upload limit."""
    clock = FixedClock(START, tick=timedelta(milliseconds=1))
    app = create_app(
        make_settings(
            database_url, storage_url=storage_url, max_upload_bytes=MAX_UPLOAD, **settings
        ),
        TestAdapters(clock),
    )
    async with AsyncTestClient(app) as client:
        yield Api(app, client, clock)


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on local storage under ``tmp_path``."""
    async with serving(database_url, f"file://{tmp_path / 'storage'}") as api:
        yield api


async def upload(
    tenant: Tenant, text: str, name: str = "may.csv", role: str = "admin", **form: str
) -> Any:
    return await tenant.api.client.post(
        "/v1/imports",
        files={"file": (name, text.encode(), "text/csv")},
        data=form,
        headers=tenant.headers[role],
    )


async def finished(tenant: Tenant, run_id: str) -> dict[str, Any]:
    """The run once the worker task has finished it."""
    for _ in range(500):
        response = await tenant.api.client.get(
            f"/v1/imports/{run_id}", headers=tenant.headers["admin"]
        )
        assert response.status_code == 200, response.text
        if response.json()["status"] in FINISHED:
            return response.json()
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} did not finish: {response.json()}")


async def test_an_upload_is_queued_then_imported_by_the_worker(api, alpha):
    response = await upload(alpha, placement_text(5))

    assert response.status_code == 202, response.text
    run = response.json()
    assert response.headers["location"] == f"/v1/imports/{run['id']}"
    assert (run["status"], run["file_name"]) == ("queued", "may.csv")
    done = await finished(alpha, run["id"])
    assert done["status"] == "succeeded"
    assert (done["rows_read"], done["rows_created"], done["rows_failed"]) == (5, 5, 0)
    accounts = await api.client.get("/v1/accounts", headers=alpha.headers["admin"])
    assert len(accounts.json()["items"]) == 5


async def test_bad_rows_are_listed_a_page_at_a_time_and_downloadable_as_csv(api, alpha):
    run = (await upload(alpha, placement_text(9, bad_every=3))).json()
    done = await finished(alpha, run["id"])
    url = f"/v1/imports/{run['id']}/errors"
    headers = alpha.headers["readonly"]

    first = (await api.client.get(url, params={"limit": 2}, headers=headers)).json()
    rest = await api.client.get(
        url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    )
    by_accept = await api.client.get(url, headers={**headers, "Accept": "text/csv"})
    by_query = await api.client.get(url, params={"format": "csv"}, headers=headers)

    assert (done["status"], done["rows_created"], done["rows_failed"]) == (
        "partially_failed",
        6,
        3,
    )
    errors = first["items"] + rest.json()["items"]
    assert [e["line"] for e in errors] == [4, 7, 10]
    assert rest.json()["next_cursor"] is None
    assert by_accept.status_code == 200, by_accept.text
    assert by_accept.headers["content-type"].startswith("text/csv"), by_accept.text[:300]
    assert "attachment" in by_accept.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(by_accept.text)))
    assert rows[0] == ["line", "column", "reason", "value"]
    # "-5.00" could start a formula in a spreadsheet: the download defuses it.
    assert [e["value"] for e in errors] == ["-5.00"] * 3
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        (str(e["line"]), e["column"], "'-5.00") for e in errors
    ]
    assert by_query.text == by_accept.text
    for accept in ("text/csv;q=0.1, application/json", "application/json, text/csv", "*/*"):
        as_json = await api.client.get(url, headers={**headers, "Accept": accept})
        assert as_json.headers["content-type"] == "application/json", accept
    schema = (await api.client.get("/schema/openapi.json")).json()
    documented = schema["paths"]["/v1/imports/{run_id}/errors"]["get"]["responses"]["200"]
    assert set(documented["content"]) == {"application/json", "text/csv"}


async def test_an_accept_header_that_cannot_be_read_asks_for_json(api, alpha):
    run = (await upload(alpha, placement_text(3, bad_every=3))).json()
    await finished(alpha, run["id"])
    url = f"/v1/imports/{run['id']}/errors"
    # Litestar's parse overflows on the first two; it would take the others for q=1.
    for accept in ("text/csv;q=inf", 'text/csv;Q="1e999"', "text/csv;q=abc", "text/csv;q=2"):
        answer = await api.client.get(url, headers={**alpha.headers["readonly"], "Accept": accept})
        assert answer.status_code == 200, (accept, answer.text)
        assert answer.headers["content-type"] == "application/json", accept
    weighed = await api.client.get(
        url,
        headers={**alpha.headers["readonly"], "Accept": "application/json;q=0.5, text/csv;q=1.0"},
    )
    assert weighed.headers["content-type"].startswith("text/csv")


async def test_the_same_content_twice_imports_once(api, alpha):
    first = (await upload(alpha, placement_text(3), name="a.csv")).json()
    await finished(alpha, first["id"])

    again = await upload(alpha, placement_text(3), name="renamed.csv")

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["status"] == "succeeded"
    runs = await api.client.get("/v1/imports", headers=alpha.headers["admin"])
    assert [r["id"] for r in runs.json()["items"]] == [first["id"]]


async def test_a_missing_required_column_fails_the_run_with_the_reason(api, alpha):
    text = placement_text(2).replace("account_id,", "acct,", 1)

    run = (await upload(alpha, text)).json()
    done = await finished(alpha, run["id"])

    assert done["status"] == "failed"
    assert "account_id" in done["failure_reason"]
    assert done["rows_created"] == 0


async def test_a_failed_run_uploaded_again_with_a_mapping_is_reopened_and_imported(api, alpha):
    text = placement_text(2).replace("account_id,", "acct,", 1)
    failed = await finished(alpha, (await upload(alpha, text)).json()["id"])
    assert failed["status"] == "failed"

    again = await upload(alpha, text, column_mapping='{"acct": "account_id"}')

    assert again.status_code == 202, again.text
    assert (again.json()["id"], again.json()["status"]) == (failed["id"], "queued")
    done = await finished(alpha, failed["id"])
    assert (done["status"], done["rows_created"], done["failure_reason"]) == (
        "succeeded",
        2,
        None,
    )
    trail = await api.client.get(
        "/v1/audit-log", headers=alpha.headers["admin"], params={"entity_id": failed["id"]}
    )
    actions = [entry["action"] for entry in trail.json()["items"]]
    assert actions == [
        "import_run.finished",
        "import_run.started",
        "import_run.reopened",
        "import_run.finished",
        "import_run.started",
        "import_run.queued",
    ]


async def test_the_delimiter_and_column_mapping_of_the_form_are_used(api, alpha):
    text = placement_text(2).replace(",", ";").replace("account_id", "Acct No", 1)

    run = (
        await upload(alpha, text, delimiter=";", column_mapping='{"Acct No": "account_id"}')
    ).json()
    done = await finished(alpha, run["id"])

    assert (done["status"], done["rows_created"]) == ("succeeded", 2)
    assert (done["delimiter"], done["column_mapping"]) == (";", {"Acct No": "account_id"})


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"delimiter": ";;"}, "delimiter"),
        ({"column_mapping": "not json"}, "column_mapping"),
        ({"column_mapping": '{"Acct": "no_such_column"}'}, "column_mapping"),
    ],
)
async def test_bad_options_are_a_422_naming_the_field(api, alpha, form, field):
    response = await upload(alpha, placement_text(1), **form)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    runs = await api.client.get("/v1/imports", headers=alpha.headers["admin"])
    assert runs.json()["items"] == []


@pytest.mark.parametrize("role", ["collector", "readonly"])
async def test_only_an_agency_admin_uploads(api, alpha, role):
    response = await upload(alpha, placement_text(1), role=role)

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_collector_reads_no_runs(api, alpha):
    """A run adds up the agency's whole placement, beyond the accounts a collector works."""
    run = (await upload(alpha, placement_text(3, bad_every=2))).json()
    await finished(alpha, run["id"])
    headers = alpha.headers["collector"]

    for path in ["/v1/imports", f"/v1/imports/{run['id']}", f"/v1/imports/{run['id']}/errors"]:
        response = await api.client.get(path, headers=headers)
        assert response.status_code == 403, path
        assert response.headers["content-type"].startswith("application/problem+json")
    csv = await api.client.get(
        f"/v1/imports/{run['id']}/errors", headers={**headers, "Accept": "text/csv"}
    )
    assert csv.status_code == 403


async def test_without_a_token_it_is_a_401(api, alpha):
    response = await api.client.post(
        "/v1/imports", files={"file": ("a.csv", placement_text(1).encode(), "text/csv")}
    )

    assert response.status_code == 401


async def test_another_agencys_runs_are_not_found(api, alpha):
    beta = await api.tenant("beta")
    run = (await upload(alpha, placement_text(3, bad_every=2))).json()
    await finished(alpha, run["id"])
    headers = beta.headers["admin"]

    assert (await api.client.get(f"/v1/imports/{run['id']}", headers=headers)).status_code == 404
    errors = f"/v1/imports/{run['id']}/errors"
    assert (await api.client.get(errors, headers=headers)).status_code == 404
    csv_errors = await api.client.get(errors, params={"format": "csv"}, headers=headers)
    assert csv_errors.status_code == 404
    assert (await api.client.get("/v1/imports", headers=headers)).json()["items"] == []
    again = await upload(beta, placement_text(3, bad_every=2))
    assert again.status_code == 202
    assert again.json()["id"] != run["id"]


async def test_a_file_over_the_limit_is_a_413(api, alpha):
    text = placement_text(400)
    assert len(text) > MAX_UPLOAD

    response = await upload(alpha, text)

    assert response.status_code == 413
    problem = response.json()
    assert problem["type"].endswith("too-large")
    assert str(MAX_UPLOAD) in problem["detail"]
    runs = await api.client.get("/v1/imports", headers=alpha.headers["admin"])
    assert runs.json()["items"] == []


async def test_an_anonymous_upload_is_a_401_before_its_body_is_read(api, alpha):
    text = placement_text(400)  # over the limit: read, it would be a 413

    response = await api.client.post(
        "/v1/imports", files={"file": ("may.csv", text.encode(), "text/csv")}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_s3_down_is_a_503_that_names_no_endpoint(database_url):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    settings = {
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
    }
    async with serving(database_url, "s3://imports", **settings) as api:
        response = await upload(await api.tenant("alpha"), placement_text(3))

    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["type"].endswith("unavailable")
    assert problem["detail"] == "object storage could not be reached"
    assert "127.0.0.1" not in response.text
    assert "imports/" not in response.text


async def test_a_storage_directory_that_cannot_be_written_is_a_503_that_names_no_path(
    database_url, tmp_path
):
    # A full disk fails the same way: an OSError whose text names our directory.
    (tmp_path / "a-file").write_bytes(b"")
    storage_url = f"file://{tmp_path / 'a-file' / 'storage'}"
    async with serving(database_url, storage_url) as api:
        response = await upload(await api.tenant("alpha"), placement_text(3))

    assert response.status_code == 503, response.text
    assert response.json()["detail"] == "object storage could not be used"
    assert str(tmp_path) not in response.text


async def test_runs_are_listed_newest_first_a_page_at_a_time_and_by_status(api, alpha):
    ids = []
    for n in range(3):
        run = (await upload(alpha, placement_text(2, start=10 * n))).json()
        await finished(alpha, run["id"])
        ids.append(run["id"])
    failed = (await upload(alpha, "only,unknown,columns\r\n1,2,3\r\n")).json()
    await finished(alpha, failed["id"])
    headers = alpha.headers["readonly"]

    page = (await api.client.get("/v1/imports", params={"limit": 2}, headers=headers)).json()
    rest = await api.client.get(
        "/v1/imports", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers
    )
    only_failed = await api.client.get("/v1/imports", params={"status": "failed"}, headers=headers)

    assert [r["id"] for r in page["items"] + rest.json()["items"]] == [
        failed["id"],
        *reversed(ids),
    ]
    assert [r["id"] for r in only_failed.json()["items"]] == [failed["id"]]
    bad_status = await api.client.get("/v1/imports", params={"status": "lost"}, headers=headers)
    assert bad_status.status_code == 400


async def link(api: Api, key: str, name: str = "backup.csv") -> str:
    """The signed link's path and query, as the app's storage makes it."""
    async with api.app.state.dishka_container() as request:
        storage = await request.get(ObjectStorage)
        url = await storage.download_url(key, expires_in=timedelta(minutes=5), file_name=name)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_signed_link_downloads_the_backed_up_file_without_a_token(api, alpha):
    text = placement_text(3)
    run = (await upload(alpha, text, name="June file.csv")).json()
    await finished(alpha, run["id"])

    response = await api.client.get(await link(api, run["storage_key"], "June file.csv"))

    assert response.status_code == 200
    assert response.content == text.encode()
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="June file.csv"' in response.headers["content-disposition"]


async def test_a_tampered_expired_or_dangling_link_is_refused(api, alpha):
    run = (await upload(alpha, placement_text(1))).json()
    await finished(alpha, run["id"])
    good = await link(api, run["storage_key"])
    other_key = run["storage_key"].replace("may.csv", "other.csv")

    tampered_name = good.replace("name=backup.csv", "name=evil.exe")
    tampered_key = good.replace("may.csv", "other.csv")
    unsigned = good.split("?")[0]
    not_hex = good.split("signature=")[0] + "signature=%C3%A9"
    missing = await link(api, other_key)
    api.clock.advance(timedelta(minutes=6))
    expired = await api.client.get(good)

    for refused in (tampered_name, tampered_key, unsigned, not_hex):
        response = await api.client.get(refused)
        assert response.status_code == 403, refused
        assert response.headers["content-type"].startswith("application/problem+json")
    assert expired.status_code == 403
    api.clock.advance(timedelta(minutes=-6))
    assert (await api.client.get(missing)).status_code == 404
