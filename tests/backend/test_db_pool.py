"""Pooled Postgres connections the server has closed (a restart, an administrator) are replaced
at checkout, without a round trip and without failing the request that takes one."""

import asyncio

import pytest
from bishop_backend.db import create_engine
from sqlalchemy import text

from tests.support import servers as srv

pytestmark = pytest.mark.servers


async def test_a_connection_the_server_closed_is_replaced_at_checkout() -> None:
    url, name = await srv.create_postgres_database()
    engine = create_engine(url, pool_size=1, max_overflow=0)
    admin = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with admin.connect() as conn:
            assert (await conn.execute(text(f"SELECT pg_terminate_backend({pid})"))).scalar()
        await asyncio.sleep(0.5)  # the pooled connection reads the server's goodbye

        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await engine.dispose()
        await admin.dispose()
        await srv.drop_postgres_database(name)
