"""Fixtures of the end-to-end tests."""

from tests.support.s3 import s3_bucket, s3_emulator  # noqa: F401
from tests.support.stripe_emulator import stripe_emulator  # noqa: F401
