"""The scheduled upkeep's use cases on the in-memory adapters: ended sessions purged
without weakening refresh-token reuse detection, and the audit log's retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from debtflow_adapters.memory import InMemoryAccessTokens, InMemoryRateLimiter
from debtflow_adapters.memory.audit_partitions import InMemoryAuditPartitions
from debtflow_core.errors import Unauthenticated
from debtflow_core.ports.sessions import PurgedSessions
from debtflow_core.use_cases.audit_log import (
    AuditRetention,
    AuditUpkeep,
    MaintainAuditPartitions,
    retention_cutoff,
)
from debtflow_core.use_cases.auth import (
    Authenticate,
    AuthPolicy,
    Credentials,
    Login,
    Logout,
    PurgeSessions,
    Refresh,
)

NOTHING = PurgedSessions(sessions=0, refresh_tokens=0)


@pytest.fixture
async def auth(world):
    await world.agency("alpha")
    codec = InMemoryAccessTokens()
    deps = {"uow": world.uow, "codec": codec, "clock": world.clock, "policy": AuthPolicy()}

    class Auth:
        refresh = Refresh(**deps)
        authenticate = Authenticate(world.uow, codec, world.clock)
        logout = Logout(world.uow, world.clock)
        purge = PurgeSessions(world.uow, world.clock)

        @staticmethod
        async def sign_in():
            login = Login(**deps, hasher=world.hasher, limiter=InMemoryRateLimiter(world.clock))
            credentials = Credentials(
                email="collector@alpha.example", password="correct horse battery", client="c"
            )
            return await login.execute(credentials)

    return world, Auth


async def test_a_purge_keeps_live_sessions_and_a_second_purge_removes_nothing(auth):
    world, a = auth
    first = await a.sign_in()
    kept = (await a.authenticate.execute(first.access_token)).session_id
    rotated = await a.refresh.execute(first.refresh_token)  # the first token is spent
    ended = await a.sign_in()
    await a.logout.execute(await a.authenticate.execute(ended.access_token))

    assert await a.purge.execute() == PurgedSessions(sessions=1, refresh_tokens=1)
    assert await a.purge.execute() == NOTHING
    assert world.store.sessions.keys() == {kept}
    assert len(world.store.refresh_tokens) == 2  # the spent one and its successor

    # The spent token is kept while it could be presented: reuse still revokes the family.
    with pytest.raises(Unauthenticated, match="used before"):
        await a.refresh.execute(first.refresh_token)
    with pytest.raises(Unauthenticated, match="session has ended"):
        await a.authenticate.execute(rotated.access_token)
    # The logged-out session is gone, and still refused.
    with pytest.raises(Unauthenticated, match="not valid"):
        await a.refresh.execute(ended.refresh_token)
    with pytest.raises(Unauthenticated, match="session has ended"):
        await a.authenticate.execute(ended.access_token)


async def test_sessions_whose_tokens_all_expired_are_purged_with_their_tokens(auth):
    world, a = auth
    pair = await a.sign_in()
    await a.refresh.execute(pair.refresh_token)
    world.clock.advance(timedelta(days=13))
    assert await a.purge.execute() == NOTHING  # both tokens still within their 14 days
    world.clock.advance(timedelta(days=2))
    assert await a.purge.execute() == PurgedSessions(sessions=1, refresh_tokens=2)
    assert await a.purge.execute() == NOTHING
    assert not world.store.sessions and not world.store.refresh_tokens
    with pytest.raises(Unauthenticated, match="not valid"):
        await a.refresh.execute(pair.refresh_token)


class RecordingPartitions(InMemoryAuditPartitions):
    def __init__(self) -> None:
        self.cutoffs: list[datetime] = []
        self.months_ahead: list[int] = []

    async def create_ahead(self, months_ahead: int) -> int:
        self.months_ahead.append(months_ahead)
        return 0

    async def detach_before(self, cutoff: datetime) -> tuple[str, ...]:
        self.cutoffs.append(cutoff)
        return ()


async def test_without_a_retention_partitions_are_made_ahead_and_none_detached(world):
    partitions = RecordingPartitions()
    upkeep = await MaintainAuditPartitions(partitions, world.clock, AuditRetention()).execute()
    assert upkeep == AuditUpkeep(created=0, detached=())
    assert (partitions.months_ahead, partitions.cutoffs) == ([3], [])


async def test_with_a_retention_partitions_older_than_it_are_detached(world):
    partitions = RecordingPartitions()
    retention = AuditRetention(months=36)
    await MaintainAuditPartitions(partitions, world.clock, retention).execute()
    assert partitions.cutoffs == [datetime(2023, 1, 1, tzinfo=UTC)]  # the clock is 2026-01-05


@pytest.mark.parametrize(
    ("now", "months", "cutoff"),
    [
        (datetime(2026, 1, 5, 9, tzinfo=UTC), 36, datetime(2023, 1, 1, tzinfo=UTC)),
        (datetime(2026, 3, 1, 0, tzinfo=UTC), 38, datetime(2023, 1, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), 48, datetime(2022, 12, 1, tzinfo=UTC)),
    ],
)
def test_the_cutoff_keeps_every_entry_at_least_the_retention(now, months, cutoff):
    assert retention_cutoff(now, months) == cutoff
    # `months` months after the cutoff is the start of the current month: an entry just
    # before the cutoff is older than the retention by the time it is let go.
    index = cutoff.year * 12 + cutoff.month - 1 + months
    assert datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC) == now.replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )


def test_records_are_kept_at_least_three_years():
    with pytest.raises(ValueError, match="at least 36 months"):
        AuditRetention(months=35)
    assert AuditRetention(months=36).months == 36
