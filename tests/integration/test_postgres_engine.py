"""The PostgreSQL engine's sessions: in UTC, with the URL's own libpq options kept."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from debtflow_adapters.persistence import create_engine
from debtflow_adapters.persistence.psycopg_reads import reused_cursor

pytestmark = pytest.mark.postgres


async def test_sessions_are_in_utc_and_keep_the_urls_options(postgres_url: str):
    url = make_url(postgres_url).update_query_dict({"options": "-c search_path=public"})
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as connection:
            result = await connection.exec_driver_sql(
                "SELECT current_setting('TimeZone'), current_setting('search_path')"
            )
            assert result.one() == ("UTC", "public")
    finally:
        await engine.dispose()


async def test_a_connection_left_in_autocommit_mode_is_replaced_at_checkout(postgres_url: str):
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            left = (await connection.get_raw_connection()).driver_connection
            await left.set_autocommit(True)
        async with engine.connect() as connection:
            taken = (await connection.get_raw_connection()).driver_connection
            assert taken is not left
            assert not taken.autocommit
            assert left.closed
    finally:
        await engine.dispose()


async def test_a_pooled_connection_keeps_one_cursor_and_a_replaced_one_gets_its_own(
    postgres_url: str,
):
    engine = create_engine(postgres_url)
    try:

        async def cursor_and_connection() -> tuple[object, object]:
            async with engine.connect() as connection:
                raw = await connection.get_raw_connection()
                return reused_cursor(raw.driver_connection, raw.info), raw.driver_connection

        first, connection = await cursor_and_connection()
        again, same = await cursor_and_connection()
        assert (again, same) == (first, connection)
        await connection.set_autocommit(True)  # makes the pool replace it at checkout
        replaced, new = await cursor_and_connection()
        assert new is not connection
        assert replaced is not first and replaced.connection is new
    finally:
        await engine.dispose()
