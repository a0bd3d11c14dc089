"""The acceptance test of exports: a real ``debtflow serve`` and ``debtflow worker`` on
PostgreSQL, sharing a Redis broker and an S3 bucket (moto's server). The API queues the
export, the worker writes its CSV file to S3, and the presigned link the API then offers
downloads exactly the file recomputed here from the database's raw rows."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from debtflow_adapters.persistence import create_engine
from debtflow_adapters.persistence.tables import accounts, agencies
from debtflow_adapters.s3 import S3Config
from tests.e2e.conftest import empty_queue_on
from tests.e2e.test_worker import SRC, Installation, _wait

# Databases of its own (8 to 11, see empty_queue_on): the other e2e tests use 12 to 15.
BROKER_URL = os.environ.get("DEBTFLOW_TEST_EXPORT_BROKER_URL", "redis://127.0.0.1:6379/8")
JWT_SECRET = "e2e-export-secret-" + "x" * 32
AS_OF = date(2026, 6, 30)
BUCKETS = ("0-90", "91-180", "181-365", "1-2y", "over-2y", "unknown")


@pytest.fixture
def broker_redis() -> Iterator[str]:
    yield from empty_queue_on(BROKER_URL)


@pytest.fixture
def installation(
    tmp_path: Path, database: str, broker_redis: str, s3_bucket: S3Config
) -> Iterator[Installation]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEBTFLOW_")}
    env |= {
        "PYTHONPATH": str(SRC),
        "DEBTFLOW_JWT_SECRET": JWT_SECRET,
        "DEBTFLOW_DATABASE_URL": database,
        "DEBTFLOW_BROKER_URL": broker_redis,
        "DEBTFLOW_STORAGE_URL": f"s3://{s3_bucket.bucket}",
        "DEBTFLOW_S3_REGION": s3_bucket.region,
        "DEBTFLOW_S3_ENDPOINT_URL": str(s3_bucket.endpoint_url),
        "DEBTFLOW_S3_ACCESS_KEY_ID": str(s3_bucket.access_key),
        "DEBTFLOW_S3_SECRET_ACCESS_KEY": str(s3_bucket.secret_key),
        "DEBTFLOW_EXPORT_LINK_SECONDS": "300",
    }
    installation = Installation(tmp_path, env)
    installation.run("seed-demo")
    try:
        yield installation
    finally:
        installation.kill_all()


def _bucket(charge_off: date | None) -> str:
    if charge_off is None:
        return "unknown"
    age = (AS_OF - charge_off).days
    for bucket, oldest in (("0-90", 90), ("91-180", 180), ("181-365", 365), ("1-2y", 730)):
        if age <= oldest:
            return bucket
    return "over-2y"


async def _expected_aging(database: str) -> str:
    """The aging CSV recomputed from the accounts table alone: open accounts (active or
    disputed) counted and summed per currency and age bucket, every bucket listed."""
    engine = create_engine(database)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(
                        accounts.c.currency,
                        accounts.c.charge_off_date,
                        accounts.c.current_balance,
                    )
                    .join(agencies, agencies.c.id == accounts.c.agency_id)
                    .where(agencies.c.slug == "demo", accounts.c.status.in_(["active", "disputed"]))
                )
            ).all()
    finally:
        await engine.dispose()
    counts: Counter[tuple[str, str]] = Counter()
    sums: Counter[tuple[str, str]] = Counter()
    for currency, charge_off, balance in rows:
        counts[currency, _bucket(charge_off)] += 1
        sums[currency, _bucket(charge_off)] += balance
    assert len(rows) > 10 and len({b for _, b in counts}) > 2  # a test worth its name
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(["as_of", "currency", "bucket", "accounts", "balance"])
    for currency in sorted({c for c, _ in counts}):
        for bucket in BUCKETS:
            key = (currency, bucket)
            writer.writerow([AS_OF.isoformat(), currency, bucket, counts[key], sums[key]])
    return text.getvalue()


async def test_an_export_runs_on_the_worker_and_its_presigned_link_downloads_the_csv(
    installation: Installation, database: str, s3_bucket: S3Config
):
    server = installation.serve()
    worker = installation.start("worker", "worker")
    body = {"kind": "aging", "parameters": {"as_of": AS_OF.isoformat()}}

    response = server.call("POST", "/v1/exports", json=body)

    assert response.status_code == 202, response.text
    export_id = response.json()["id"]

    def finished() -> bool:
        status = server.call("GET", f"/v1/exports/{export_id}").json()["status"]
        return status in ("succeeded", "failed")

    _wait(finished, "the worker to write the export")
    export = server.call("GET", f"/v1/exports/{export_id}").json()
    assert export["status"] == "succeeded", export
    url = export["download_url"]
    assert url.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.bucket}/{export['storage_key']}?")
    assert re.fullmatch(
        rf"{export['agency_id']}/exports/\d{{4}}/\d{{2}}/\d{{2}}/{export_id}\.csv",
        export["storage_key"],
    )
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    download = httpx.get(url, timeout=30)
    assert download.status_code == 200, download.text
    assert 'filename="aging-2026-06-30.csv"' in download.headers["content-disposition"]
    expected = await _expected_aging(database)
    assert download.text == expected
    assert export["rows"] == len(expected.splitlines()) - 1
    assert f"export {export_id} (aging): succeeded" in worker.output()
    listed = server.call("GET", "/v1/exports", params={"status": "succeeded"}).json()
    assert [e["id"] for e in listed["items"]] == [export_id]
    assert worker.stop(signal.SIGTERM) == 0
