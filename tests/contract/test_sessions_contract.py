"""SessionRepository: sessions, refresh tokens and single use under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from debtflow_core.domain.agency import Agency
from debtflow_core.domain.session import RefreshToken, Session
from debtflow_core.domain.user import Role, User
from debtflow_core.ports.sessions import PurgedSessions

T0 = datetime(2026, 5, 17, 8, 30, tzinfo=UTC)


@pytest.fixture
async def session(uow_factory) -> Session:
    agency = Agency(id=uuid.uuid4(), slug="alpha", name="Alpha", created_at=T0)
    user = User(
        id=uuid.uuid4(),
        agency_id=agency.id,
        email="a@alpha.example",
        full_name="A",
        role=Role.COLLECTOR,
        password_hash="h",
        active=True,
        created_at=T0,
    )
    session = Session(
        id=uuid.uuid4(), agency_id=agency.id, user_id=user.id, created_at=T0, revoked_at=None
    )
    async with uow_factory() as uow:
        await uow.agencies.add(agency)
        await uow.users.add(user)
        await uow.sessions.add(session)
        await uow.commit()
    return session


def token(session: Session, token_hash: str) -> RefreshToken:
    return RefreshToken(
        id=uuid.uuid4(),
        session_id=session.id,
        token_hash=token_hash,
        issued_at=T0,
        expires_at=T0 + timedelta(days=14),
        used_at=None,
    )


async def test_sessions_and_tokens_round_trip_and_revoke(uow_factory, session):
    issued = token(session, "a" * 64)
    async with uow_factory() as uow:
        assert await uow.sessions.get(session.id) == session
        await uow.sessions.add_token(issued)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.sessions.get_token("a" * 64) == issued
        assert await uow.sessions.get_token("b" * 64) is None
        assert await uow.sessions.revoke(session.id, T0 + timedelta(hours=1))
        # The first one stays, and the second revoked nothing.
        assert not await uow.sessions.revoke(session.id, T0 + timedelta(hours=2))
        assert not await uow.sessions.revoke(uuid.uuid4(), T0)
        await uow.commit()
    async with uow_factory() as uow:
        revoked = await uow.sessions.get(session.id)
    assert revoked.revoked_at == T0 + timedelta(hours=1)


async def test_a_token_is_used_once(uow_factory, session):
    issued = token(session, "c" * 64)
    async with uow_factory() as uow:
        await uow.sessions.add_token(issued)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.sessions.use_token(issued.id, T0)
        assert not await uow.sessions.use_token(issued.id, T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.sessions.get_token("c" * 64)).used_at == T0
        assert not await uow.sessions.use_token(issued.id, T0)


async def test_of_two_concurrent_uses_exactly_one_wins(uow_factory, session):
    issued = token(session, "d" * 64)
    async with uow_factory() as uow:
        await uow.sessions.add_token(issued)
        await uow.commit()

    async def use() -> bool:
        async with uow_factory() as uow:
            won = await uow.sessions.use_token(issued.id, T0)
            await asyncio.sleep(0.05)  # hold the transaction open while the other tries
            await uow.commit()
            return won

    assert sorted(await asyncio.gather(use(), use())) == [False, True]


async def test_a_session_is_read_with_its_user(uow_factory, session):
    async with uow_factory() as uow:
        user = await uow.users.get(session.user_id)
        assert await uow.sessions.get_with_user(session.id) == (session, user)
        assert await uow.sessions.get_with_user(uuid.uuid4()) is None
        await uow.users.update(msgspec.structs.replace(user, active=False))
        await uow.sessions.revoke(session.id, T0 + timedelta(hours=1))
        # Read in the same transaction: what a write before it changed shows.
        found_session, found_user = await uow.sessions.get_with_user(session.id)
    assert found_session.revoked_at == T0 + timedelta(hours=1)
    assert not found_user.active


async def test_purge_removes_expired_tokens_and_ended_sessions_once(uow_factory, session):
    """Kept: a live session's unexpired tokens, used or not (a used one must still be
    found, to revoke its session if presented again). Gone: expired tokens, every token
    of a revoked session, and sessions left without a token."""
    later = T0 + timedelta(days=10)
    expired = token(session, "e" * 64)  # expires T0 + 14 days
    used = msgspec.structs.replace(
        token(session, "f" * 64), issued_at=later, expires_at=later + timedelta(days=14)
    )
    fresh = msgspec.structs.replace(
        token(session, "g" * 64), issued_at=later, expires_at=later + timedelta(days=14)
    )
    revoked = msgspec.structs.replace(session, id=uuid.uuid4(), revoked_at=later)
    lapsed = msgspec.structs.replace(session, id=uuid.uuid4())
    async with uow_factory() as uow:
        await uow.sessions.add(revoked)
        await uow.sessions.add(lapsed)
        for issued in (expired, used, fresh, token(revoked, "h" * 64), token(lapsed, "i" * 64)):
            await uow.sessions.add_token(issued)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.sessions.use_token(used.id, later)
        await uow.commit()

    now = T0 + timedelta(days=15)
    async with uow_factory() as uow:
        purged = await uow.sessions.purge_ended(now)
        await uow.commit()
    assert purged == PurgedSessions(sessions=2, refresh_tokens=3)
    async with uow_factory() as uow:
        assert await uow.sessions.purge_ended(now) == PurgedSessions(sessions=0, refresh_tokens=0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.sessions.get(session.id) == session
        assert await uow.sessions.get(revoked.id) is None
        assert await uow.sessions.get(lapsed.id) is None
        assert await uow.sessions.get_token("e" * 64) is None
        assert await uow.sessions.get_token("h" * 64) is None
        assert (await uow.sessions.get_token("f" * 64)).used_at == later
        assert not await uow.sessions.use_token(used.id, now)  # reuse still detected
        assert await uow.sessions.get_token("g" * 64) == fresh


async def test_a_purge_that_is_not_committed_removes_nothing(uow_factory, session):
    issued = token(session, "j" * 64)
    async with uow_factory() as uow:
        await uow.sessions.add_token(issued)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.sessions.purge_ended(T0 + timedelta(days=30)) == PurgedSessions(
            sessions=1, refresh_tokens=1
        )
        assert await uow.sessions.get(session.id) is None  # this transaction sees it gone
    async with uow_factory() as uow:
        assert await uow.sessions.get(session.id) == session
        assert await uow.sessions.get_token("j" * 64) == issued
