"""S3 adapters: object storage on Amazon S3 or an S3-compatible service, through boto3."""

from debtflow_adapters.s3.object_storage import S3Config, S3ObjectStorage

__all__ = ["S3Config", "S3ObjectStorage"]
