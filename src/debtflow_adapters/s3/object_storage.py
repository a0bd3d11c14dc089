from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig

from debtflow_adapters.local.signed_links import content_disposition
from debtflow_core.errors import NotFound, StorageUnavailable
from debtflow_core.ports.object_storage import ObjectStorage, check_key, check_link_lifetime

log = logging.getLogger("debtflow.s3")

CHECK_TIMEOUT_SECONDS = 2.0
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})

UNREACHABLE = "object storage could not be reached"
REFUSED = "object storage refused the request"


@dataclass(frozen=True, kw_only=True)
class S3Config:
    """Where the objects go. Without ``access_key`` and ``secret_key``, boto3 finds
    credentials itself (``AWS_*`` variables, an instance or task role). An
    ``endpoint_url`` (MinIO, Ceph, an emulator) is addressed path-style:
    ``{endpoint_url}/{bucket}/{key}``."""

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    timeout_seconds: float = 30.0
    part_bytes: int = 16 * 1024 * 1024

    def __repr__(self) -> str:
        return (
            f"S3Config(bucket={self.bucket!r}, region={self.region!r}, "
            f"endpoint_url={self.endpoint_url!r}, access_key={self.access_key!r})"
        )


class S3ObjectStorage(ObjectStorage):
    """Objects in one S3 bucket, the key their object key.

    Files move with boto3's managed transfers in a worker thread: one request up to
    ``part_bytes``, a multipart upload (parts of ``part_bytes``, four at a time) beyond,
    so memory stays bounded whatever the size. S3 makes a finished upload visible at once,
    whole. ``download_url`` is a presigned GET whose response carries a
    ``Content-Disposition`` with the file name. Any failure to reach S3 or be served by it
    (credentials, a missing bucket, a 5xx after boto3's retries) is StorageUnavailable,
    whose detail says only which of the two it was: botocore's messages name the endpoint,
    so they go to the log, with the bucket and the key.
    """

    def __init__(self, config: S3Config) -> None:
        self._bucket = config.bucket
        self._client = boto3.session.Session().client(
            "s3",
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            config=botocore.config.Config(
                signature_version="s3v4",
                connect_timeout=config.timeout_seconds,
                read_timeout=config.timeout_seconds,
                retries={"mode": "standard", "max_attempts": 3},
                s3={"addressing_style": "path" if config.endpoint_url else "auto"},
            ),
        )
        # A readiness check must answer within seconds: one attempt, short timeouts.
        self._check_client = boto3.session.Session().client(
            "s3",
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            config=botocore.config.Config(
                signature_version="s3v4",
                connect_timeout=CHECK_TIMEOUT_SECONDS,
                read_timeout=CHECK_TIMEOUT_SECONDS,
                retries={"mode": "standard", "max_attempts": 1},
                s3={"addressing_style": "path" if config.endpoint_url else "auto"},
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=config.part_bytes,
            multipart_chunksize=config.part_bytes,
            max_concurrency=4,
        )

    async def put_file(self, key: str, source: Path, *, content_type: str) -> None:
        check_key(key)
        if not source.is_file():
            raise FileNotFoundError(source)
        try:
            await asyncio.to_thread(
                self._client.upload_file,
                str(source),
                self._bucket,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=self._transfer,
            )
        except S3UploadFailedError as error:
            # boto3 raises it for a ClientError: S3 answered, and refused.
            raise self._refused("upload", error, key) from error
        except botocore.exceptions.BotoCoreError as error:
            raise self._unreachable("upload", error, key) from error

    async def get_file(self, key: str, destination: Path) -> None:
        check_key(key)
        try:
            await asyncio.to_thread(
                self._client.download_file,
                self._bucket,
                key,
                str(destination),
                Config=self._transfer,
            )
        except botocore.exceptions.ClientError as error:
            raise self._error("download", error, key) from error
        except (S3TransferFailedError, botocore.exceptions.BotoCoreError) as error:
            raise self._unreachable("download", error, key) from error

    async def exists(self, key: str) -> bool:
        check_key(key)
        try:
            await asyncio.to_thread(self._client.head_object, Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if _code(error) in _MISSING:
                return False
            raise self._error("lookup", error, key) from error
        except botocore.exceptions.BotoCoreError as error:
            raise self._unreachable("lookup", error, key) from error
        return True

    async def delete(self, key: str) -> None:
        check_key(key)
        try:
            await asyncio.to_thread(self._client.delete_object, Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            raise self._error("deletion", error, key) from error
        except botocore.exceptions.BotoCoreError as error:
            raise self._unreachable("deletion", error, key) from error

    async def download_url(self, key: str, *, expires_in: timedelta, file_name: str) -> str:
        check_key(key)
        params = {
            "Bucket": self._bucket,
            "Key": key,
            "ResponseContentDisposition": content_disposition(file_name),
        }
        # Presigning signs locally: no request, so nothing to run in a thread.
        url: str = self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=check_link_lifetime(expires_in)
        )
        return url

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._check_client.head_bucket, Bucket=self._bucket)
        except botocore.exceptions.ClientError as error:
            raise self._refused("readiness check", error) from error
        except botocore.exceptions.BotoCoreError as error:
            raise self._unreachable("readiness check", error) from error

    def _error(self, call: str, error: botocore.exceptions.ClientError, key: str) -> Exception:
        if _code(error) in _MISSING:
            return NotFound.of("object", key)
        return self._refused(call, error, key)

    def _refused(self, call: str, error: Exception, key: str | None = None) -> StorageUnavailable:
        """S3 answered, and refused (credentials, a missing bucket, a 5xx after boto3's
        retries): most likely a setting to fix, so an error in the log."""
        log.error("S3 refused the %s", call, extra=self._fields(call, error, key))
        return StorageUnavailable(REFUSED)

    def _unreachable(
        self, call: str, error: Exception, key: str | None = None
    ) -> StorageUnavailable:
        log.warning(
            "S3 could not be reached for the %s", call, extra=self._fields(call, error, key)
        )
        return StorageUnavailable(UNREACHABLE)

    def _fields(self, call: str, error: Exception, key: str | None) -> dict[str, object]:
        """For our log only: botocore's message names the endpoint (never a credential)."""
        fields: dict[str, object] = {
            "call": call,
            "bucket": self._bucket,
            "error": type(error).__name__,
            "reason": str(error),
        }
        if key is not None:
            fields["key"] = key
        if isinstance(error, botocore.exceptions.ClientError):
            fields["code"] = _code(error)
        return fields


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
