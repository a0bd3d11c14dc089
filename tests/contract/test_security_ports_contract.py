"""Clock and PasswordHasher: every adapter of each port passes the same checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from debtflow_adapters.clock import SystemClock
from debtflow_adapters.memory import FastPasswordHasher, FixedClock
from debtflow_adapters.security.argon2 import Argon2PasswordHasher
from debtflow_core.ports.clock import Clock
from debtflow_core.ports.password_hasher import PasswordHasher


@pytest.fixture(params=["system", "fixed"])
def clock(request) -> Clock:
    if request.param == "system":
        return SystemClock()
    return FixedClock(datetime(2026, 3, 1, tzinfo=UTC), tick=timedelta(milliseconds=1))


@pytest.fixture(params=["argon2", "fast"])
def hasher(request) -> PasswordHasher:
    return Argon2PasswordHasher() if request.param == "argon2" else FastPasswordHasher()


def test_the_clock_tells_aware_utc_time_that_does_not_go_back(clock):
    first, second = clock.now(), clock.now()
    assert first.utcoffset() == timedelta(0)
    assert second >= first


def test_hashes_are_salted_and_verify_only_the_right_password(hasher):
    one, two = hasher.hash("s3cret passphrase"), hasher.hash("s3cret passphrase")
    assert one != two
    assert "s3cret" not in one
    assert hasher.verify(one, "s3cret passphrase")
    assert hasher.verify(two, "s3cret passphrase")
    assert not hasher.verify(one, "s3cret passphrasE")


def test_a_malformed_hash_verifies_nothing(hasher):
    for garbage in ("", "not-a-hash", "$argon2id$v=19$bad", "fast-sha256$$"):
        assert not hasher.verify(garbage, "anything")
