"""The unit of work's contract: commit, rollback, re-entry, visibility and conflicts.

Every adapter passes it: memory, SQLite and PostgreSQL (see ``uow_factory``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from debtflow_core.domain.account import Account, AccountStatus
from debtflow_core.domain.agency import Agency
from debtflow_core.domain.debtor import ContactPreferences, Debtor
from debtflow_core.domain.user import Role, User
from debtflow_core.errors import Conflict

T0 = datetime(2026, 5, 17, 8, 30, tzinfo=UTC)


def agency(slug: str) -> Agency:
    return Agency(id=uuid.uuid4(), slug=slug, name=slug.title(), created_at=T0)


def user(agency_id: uuid.UUID, email: str) -> User:
    return User(
        id=uuid.uuid4(),
        agency_id=agency_id,
        email=email,
        full_name="Grace Hopper",
        role=Role.COLLECTOR,
        password_hash="hash",
        active=True,
        created_at=T0,
    )


def debtor(agency_id: uuid.UUID, external_id: str) -> Debtor:
    return Debtor(
        id=uuid.uuid4(),
        agency_id=agency_id,
        external_id=external_id,
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=None,
        phones=(),
        emails=(),
        address=None,
        contact_preferences=ContactPreferences(),
        created_at=T0,
        updated_at=T0,
    )


def account(agency_id: uuid.UUID, debtor_id: uuid.UUID, external_id: str) -> Account:
    return Account(
        id=uuid.uuid4(),
        agency_id=agency_id,
        debtor_id=debtor_id,
        external_id=external_id,
        original_creditor="First Bank",
        currency="USD",
        placed_balance=10_000,
        current_balance=10_000,
        charge_off_date=None,
        status=AccountStatus.ACTIVE,
        assigned_collector_id=None,
        placed_at=T0,
        updated_at=T0,
    )


async def slugs(uow_factory, *candidates: str) -> set[str]:
    """Which of ``candidates`` a new unit of work finds."""
    async with uow_factory() as uow:
        return {slug for slug in candidates if await uow.agencies.get_by_slug(slug)}


async def test_commit_keeps_the_writes(uow_factory):
    async with uow_factory() as uow:
        await uow.agencies.add(agency("alpha"))
        await uow.commit()
    assert await slugs(uow_factory, "alpha") == {"alpha"}


async def test_leaving_without_commit_keeps_nothing(uow_factory):
    async with uow_factory() as uow:
        await uow.agencies.add(agency("alpha"))
        assert await uow.agencies.get_by_slug("alpha") is not None
    assert await slugs(uow_factory, "alpha") == set()


async def test_an_exception_rolls_back_and_goes_on(uow_factory):
    with pytest.raises(LookupError):
        async with uow_factory() as uow:
            await uow.agencies.add(agency("alpha"))
            raise LookupError("boom")
    assert await slugs(uow_factory, "alpha") == set()


async def test_writes_after_a_commit_need_a_commit_of_their_own(uow_factory):
    async with uow_factory() as uow:
        await uow.agencies.add(agency("alpha"))
        await uow.commit()
        await uow.agencies.add(agency("beta"))
    assert await slugs(uow_factory, "alpha", "beta") == {"alpha"}

    async with uow_factory() as uow:
        await uow.agencies.add(agency("gamma"))
        await uow.commit()
        await uow.agencies.add(agency("delta"))
        await uow.commit()
    assert await slugs(uow_factory, "gamma", "delta") == {"gamma", "delta"}


async def test_a_unit_of_work_is_entered_again_for_a_new_transaction(uow_factory):
    uow = uow_factory()
    async with uow:
        await uow.agencies.add(agency("alpha"))
        await uow.commit()
    async with uow:
        assert await uow.agencies.get_by_slug("alpha") is not None
        await uow.agencies.add(agency("beta"))
    async with uow:
        assert await uow.agencies.get_by_slug("beta") is None


async def test_a_unit_of_work_cannot_be_entered_while_open(uow_factory):
    uow = uow_factory()
    async with uow:
        await uow.agencies.add(agency("alpha"))
        with pytest.raises(RuntimeError):
            async with uow:
                pass
        await uow.commit()
    assert await slugs(uow_factory, "alpha") == {"alpha"}


async def test_commit_outside_the_block_is_an_error(uow_factory):
    uow = uow_factory()
    with pytest.raises(RuntimeError):
        await uow.commit()
    async with uow:
        pass
    with pytest.raises(RuntimeError):
        await uow.commit()


async def test_reads_see_own_writes_and_only_committed_writes_of_others(uow_factory):
    a = agency("alpha")
    async with uow_factory() as writer, uow_factory() as reader:
        await writer.agencies.add(a)
        assert await writer.agencies.get(a.id) == a
        assert await reader.agencies.get(a.id) is None
        await writer.commit()
        assert await reader.agencies.get(a.id) == a


@pytest.fixture
async def taken(uow_factory) -> tuple[Agency, User, Debtor, Account]:
    """A committed agency, user, debtor and account whose keys the tests collide with."""
    a = agency("alpha")
    u = user(a.id, "grace@alpha.example")
    d = debtor(a.id, "D-1")
    acc = account(a.id, d.id, "A-1")
    async with uow_factory() as uow:
        await uow.agencies.add(a)
        await uow.users.add(u)
        await uow.debtors.add(d)
        await uow.accounts.add(acc)
        await uow.commit()
    return a, u, d, acc


@pytest.mark.parametrize("key", ["slug", "email", "debtor external id", "account external id"])
async def test_a_taken_key_is_a_conflict_and_the_unit_of_work_goes_on(uow_factory, taken, key):
    a, _, d, _ = taken
    async with uow_factory() as uow:
        await uow.agencies.add(agency("before"))
        with pytest.raises(Conflict):
            if key == "slug":
                await uow.agencies.add(agency("alpha"))
            elif key == "email":
                await uow.users.add(user(a.id, "grace@alpha.example"))
            elif key == "debtor external id":
                await uow.debtors.add(debtor(a.id, "D-1"))
            else:
                await uow.accounts.add(account(a.id, d.id, "A-1"))
        await uow.agencies.add(agency("after"))
        await uow.commit()
    assert await slugs(uow_factory, "before", "after") == {"before", "after"}


async def test_a_key_taken_in_the_same_unit_of_work_is_a_conflict(uow_factory):
    async with uow_factory() as uow:
        await uow.agencies.add(agency("alpha"))
        with pytest.raises(Conflict):
            await uow.agencies.add(agency("alpha"))


async def test_updating_a_debtor_to_a_taken_external_id_is_a_conflict(uow_factory, taken):
    a, *_ = taken
    other = debtor(a.id, "D-2")
    async with uow_factory() as uow:
        await uow.debtors.add(other)
        await uow.commit()
    with pytest.raises(Conflict):
        async with uow_factory() as uow:
            await uow.debtors.update(msgspec.structs.replace(other, external_id="D-1"))
            await uow.commit()
    async with uow_factory() as uow:
        assert await uow.debtors.get(other.id) == other
