"""Outside services the integration tests run against (started only when a test asks)."""

from tests.support.s3 import s3_bucket, s3_emulator  # noqa: F401
from tests.support.sshd import sshd  # noqa: F401
