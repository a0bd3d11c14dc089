"""Waiting for a PostgreSQL transaction to queue on a lock another one holds: how the
lock tests know the second transaction has read nothing yet when the first commits."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

# This database's sessions only: test runs on other databases of the server have their
# own waits. (A row lock is waited for on the holder's transaction id, a lock that
# pg_locks lists with no database.)
WAITING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


async def until_one_waits(engine: AsyncEngine) -> None:
    """Return once a transaction on ``engine``'s database waits for a lock."""
    async with engine.connect() as connection:
        for _ in range(200):
            waiting = (await connection.execute(sa.text(WAITING))).scalar_one()
            # pg_stat_activity stands still within a transaction: look again in a new one.
            await connection.rollback()
            if waiting:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the second transaction never waited for the first")
