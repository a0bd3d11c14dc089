"""A restarted database costs no failed requests: dead pooled connections are replaced."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_requests_succeed_after_the_servers_sessions_were_terminated(
    api, alpha, postgres_engine: AsyncEngine
):
    async def statuses(count: int) -> list[int]:
        responses = await asyncio.gather(
            *(api.client.get("/v1/accounts", headers=alpha.headers["admin"]) for _ in range(count))
        )
        return [response.status_code for response in responses]

    await alpha.account("A-1")
    # Several connections in the app's pool, each of which its server process will lose.
    engine = await api.app.state.dishka_container.get(AsyncEngine)
    held = [await engine.connect() for _ in range(5)]
    for connection in held:
        await connection.exec_driver_sql("SELECT 1")
        await connection.close()
    assert await statuses(12) == [200] * 12
    async with postgres_engine.connect() as connection:
        terminated = await connection.scalar(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert terminated >= 5
    await asyncio.sleep(0.2)  # the server's goodbyes reach the clients' sockets

    assert await statuses(12) == [200] * 12
    assert await statuses(12) == [200] * 12
