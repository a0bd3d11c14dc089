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
        await uow.sessions.revoke(session.id, T0 + timedelta(hours=1))
        await uow.sessions.revoke(session.id, T0 + timedelta(hours=2))  # the first one stays
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
