"""Signing in, rotating refresh tokens, reuse detection, logout and deactivation."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import msgspec
import pytest

from debtflow_adapters.memory import (
    FastPasswordHasher,
    InMemoryAccessTokens,
    InMemoryRateLimiter,
)
from debtflow_core.domain.user import Role
from debtflow_core.errors import RateLimited, Unauthenticated
from debtflow_core.use_cases.audit_log import AuditFilters, QueryAuditLog
from debtflow_core.use_cases.auth import (
    Authenticate,
    AuthPolicy,
    Credentials,
    Login,
    Logout,
    Refresh,
)
from debtflow_core.use_cases.users import ChangeUserRole, DeactivateUser

PASSWORD = "correct horse battery"


class CountingHasher(FastPasswordHasher):
    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified += 1
        return super().verify(password_hash, password)


@pytest.fixture
async def auth(world):
    alpha = await world.agency("alpha")
    codec = InMemoryAccessTokens()
    limiter = InMemoryRateLimiter(world.clock)
    policy = AuthPolicy(logins_per_email=3, logins_per_client=5)
    deps = {"uow": world.uow, "codec": codec, "clock": world.clock, "policy": policy}

    class Auth:
        login = Login(**deps, hasher=world.hasher, limiter=limiter)
        refresh = Refresh(**deps)
        authenticate = Authenticate(world.uow, codec, world.clock)
        logout = Logout(world.uow, world.clock)

        @staticmethod
        async def sign_in(email="collector@alpha.example", password=PASSWORD, client="10.0.0.1"):
            return await Auth.login.execute(
                Credentials(email=email, password=password, client=client)
            )

    return world, alpha, Auth


async def test_a_login_gives_tokens_that_authenticate_as_the_user(auth):
    _world, alpha, a = auth
    pair = await a.sign_in(email=" Collector@Alpha.example")
    assert (pair.token_type, pair.expires_in, pair.refresh_expires_in) == (
        "Bearer",
        900,
        14 * 24 * 3600,
    )
    actor = await a.authenticate.execute(pair.access_token)
    assert (actor.user_id, actor.agency_id, actor.role) == (
        alpha.collector.user_id,
        alpha.collector.agency_id,
        Role.COLLECTOR,
    )
    assert actor.session_id is not None


async def test_wrong_password_unknown_email_and_inactive_users_are_refused_alike(auth):
    world, alpha, a = auth
    await world.use(DeactivateUser).execute(alpha.admin, alpha.readonly.user_id)
    attempts = [
        ("collector@alpha.example", "wrong password!"),
        ("nobody@alpha.example", PASSWORD),
        ("readonly@alpha.example", PASSWORD),
    ]
    for email, password in attempts:
        with pytest.raises(Unauthenticated) as caught:
            await a.sign_in(email=email, password=password)
        assert caught.value.detail == "the email or password is wrong"


async def test_logins_are_throttled_per_email_and_per_client(auth):
    world, _, a = auth
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await a.sign_in(password="wrong password!", client="10.0.0.2")
    with pytest.raises(RateLimited) as caught:
        await a.sign_in(client="10.0.0.3")  # the right password, but this email is spent
    assert 0 < caught.value.retry_after_seconds <= 15 * 60
    for _ in range(2):  # the first client's fifth and sixth attempts, on another email
        with pytest.raises((Unauthenticated, RateLimited)):
            await a.sign_in(email="admin@alpha.example", password="x", client="10.0.0.2")
    with pytest.raises(RateLimited):
        await a.sign_in(email="readonly@alpha.example", client="10.0.0.2")
    world.clock.advance(timedelta(minutes=15))
    assert await a.sign_in(client="10.0.0.2")


async def test_an_ipv6_client_is_throttled_by_its_64_block(auth):
    _, _, a = auth
    emails = ["admin@alpha.example", "readonly@alpha.example", "colleague@alpha.example"]
    for n in range(5):  # five hosts of one /64, each on a fresh address
        with pytest.raises(Unauthenticated):
            await a.sign_in(email=emails[n % 3], password="x", client=f"2001:db8:1:2::{n + 1}")
    with pytest.raises(RateLimited):
        await a.sign_in(client="2001:db8:1:2:ffff::9")
    assert await a.sign_in(client="2001:db8:1:3::1")  # the next /64 is another client
    assert await a.sign_in(client="::ffff:10.0.0.9")  # IPv4 as IPv6 is that IPv4 address


async def test_unknown_emails_and_wrong_passwords_hash_alike(world):
    """The same work for each refusal: one verification each, whatever the email."""
    alpha = await world.agency("alpha")
    await world.use(DeactivateUser).execute(alpha.admin, alpha.readonly.user_id)
    hasher = CountingHasher()
    deps = {"uow": world.uow, "codec": InMemoryAccessTokens(), "clock": world.clock}
    login = Login(
        **deps, policy=AuthPolicy(), hasher=hasher, limiter=InMemoryRateLimiter(world.clock)
    )
    attempts = [
        ("collector@alpha.example", "wrong password!"),
        ("nobody@alpha.example", PASSWORD),
        ("readonly@alpha.example", PASSWORD),
    ]
    for n, (email, password) in enumerate(attempts):
        with pytest.raises(Unauthenticated):
            await login.execute(Credentials(email=email, password=password, client=f"10.1.{n}.1"))
    assert hasher.verified == 3


async def test_access_tokens_expire_after_fifteen_minutes(auth):
    world, _, a = auth
    pair = await a.sign_in()
    world.clock.advance(timedelta(minutes=15))
    with pytest.raises(Unauthenticated, match="expired"):
        await a.authenticate.execute(pair.access_token)


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(auth):
    _, _, a = auth
    first = await a.sign_in()
    second = await a.refresh.execute(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    third = await a.refresh.execute(second.refresh_token)
    assert await a.authenticate.execute(third.access_token)

    with pytest.raises(Unauthenticated, match="used before"):
        await a.refresh.execute(first.refresh_token)
    for token in (third.access_token, second.access_token):
        with pytest.raises(Unauthenticated, match="session has ended"):
            await a.authenticate.execute(token)
    with pytest.raises(Unauthenticated):
        await a.refresh.execute(third.refresh_token)
    other = await a.sign_in()  # a new login is a new, healthy family
    assert await a.authenticate.execute(other.access_token)


async def test_refresh_tokens_expire_and_unknown_ones_are_refused(auth):
    world, _, a = auth
    pair = await a.sign_in()
    with pytest.raises(Unauthenticated):
        await a.refresh.execute("not-a-token")
    world.clock.advance(timedelta(days=14))
    with pytest.raises(Unauthenticated, match="expired"):
        await a.refresh.execute(pair.refresh_token)


async def test_logout_ends_access_and_refresh_at_once(auth):
    _, _, a = auth
    pair = await a.sign_in()
    actor = await a.authenticate.execute(pair.access_token)
    await a.logout.execute(actor)
    with pytest.raises(Unauthenticated):
        await a.authenticate.execute(pair.access_token)
    with pytest.raises(Unauthenticated):
        await a.refresh.execute(pair.refresh_token)


async def test_sessions_are_audited_as_they_start_and_end_but_not_as_they_rotate(auth):
    world, alpha, a = auth
    collector = alpha.collector.user_id
    with pytest.raises(Unauthenticated):
        await a.sign_in(password="wrong password!")  # no session, no entry
    first = await a.sign_in()
    leaked = (await a.authenticate.execute(first.access_token)).session_id
    rotated = await a.refresh.execute(first.refresh_token)
    for _ in range(2):  # the second finds the session revoked already
        with pytest.raises(Unauthenticated):
            await a.refresh.execute(first.refresh_token)
    second = await a.sign_in()
    actor = await a.authenticate.execute(second.access_token)
    for _ in range(2):  # the second ends nothing
        await a.logout.execute(actor)

    page = await world.use(QueryAuditLog).execute(alpha.admin, AuditFilters(entity_type="session"))
    entries = list(reversed(page.items))
    assert [(e.action, e.actor_id, e.entity_id) for e in entries] == [
        ("session.created", collector, leaked),
        ("session.revoked", None, leaked),  # by the platform: the presenter is unknown
        ("session.created", collector, actor.session_id),
        ("session.ended", collector, actor.session_id),
    ]
    created, revoked, _, ended = entries
    assert created.before == {}
    assert created.after["user_id"] == str(collector)
    assert revoked.before == {"reason": None, "revoked_at": None}
    assert revoked.after["reason"].startswith("a refresh token was presented again")
    assert ended.after["reason"] == "signed out"
    tokens = [
        token
        for pair in (first, rotated, second)
        for token in (pair.access_token, pair.refresh_token)
    ]
    written = msgspec.json.encode(entries).decode()
    for token in tokens:
        assert token not in written
        assert hashlib.sha256(token.encode()).hexdigest() not in written


async def test_deactivation_and_role_changes_apply_on_the_next_request(auth):
    world, alpha, a = auth
    pair = await a.sign_in()
    await world.use(ChangeUserRole).execute(alpha.admin, alpha.collector.user_id, Role.READONLY)
    assert (await a.authenticate.execute(pair.access_token)).role is Role.READONLY
    await world.use(DeactivateUser).execute(alpha.admin, alpha.collector.user_id)
    with pytest.raises(Unauthenticated, match="deactivated"):
        await a.authenticate.execute(pair.access_token)
    with pytest.raises(Unauthenticated, match="deactivated"):
        await a.refresh.execute(pair.refresh_token)
