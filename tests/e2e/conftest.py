"""Fixtures of the end-to-end tests."""

from tests.support.stripe_emulator import stripe_emulator  # noqa: F401
