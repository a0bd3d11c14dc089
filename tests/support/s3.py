"""An S3 emulator on 127.0.0.1 (moto's server), so the S3 adapter crosses real HTTP.

``s3_emulator`` runs for the test session; ``s3_bucket`` gives each test a new bucket in
it and the :class:`~debtflow_adapters.s3.S3Config` to reach it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from debtflow_adapters.s3 import S3Config

REGION = "eu-west-1"
"""Not us-east-1, to go through the CreateBucketConfiguration real regions want."""


@pytest.fixture(scope="session")
def s3_emulator() -> Iterator[str]:
    """The emulator's endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_emulator: str) -> S3Config:
    """A new, empty bucket of this test's own."""
    config = S3Config(
        bucket=f"debtflow-test-{secrets.token_hex(4)}",
        region=REGION,
        endpoint_url=s3_emulator,
        access_key="testing",
        secret_key="testing",
        part_bytes=5 * 1024 * 1024,
    )
    client = boto3.session.Session().client(
        "s3",
        region_name=REGION,
        endpoint_url=s3_emulator,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(
        Bucket=config.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return config
