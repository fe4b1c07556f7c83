"""Async database engine and sessions: Postgres via asyncpg or SQLite via aiosqlite."""

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, pool_timeout: float = 10.0
) -> AsyncEngine:
    """An engine whose pool gives up after `pool_timeout` seconds: a request that cannot get a
    connection fails fast with a clear 503 instead of hanging."""
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _one_writer_at_a_time(engine.sync_engine)
        return engine
    engine = create_async_engine(url, **pool)
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _one_writer_at_a_time(engine: Engine) -> None:
    """SQLite lets one transaction write at a time, and a writer that finds it taken sleeps in
    SQLite's busy handler (1 ms, growing to 100 ms) before it tries again: in a burst of writes
    some wait far longer than the lock is held. Here writers queue on an asyncio lock instead,
    from their first write to their commit or rollback, and each goes as soon as the one before
    it is done (in bench/load.py, send p95 64-74 ms instead of 132-193)."""
    from sqlalchemy.util import await_only

    lock = asyncio.Lock()
    writing: set[int] = set()

    def key(connection: Any) -> int:
        # The events hand over the pool's proxy, the dialect the driver's connection.
        return id(getattr(connection, "dbapi_connection", connection))

    @event.listens_for(engine, "before_cursor_execute")
    def take(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        writes = statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")
        if writes and key(conn.connection) not in writing:
            await_only(lock.acquire())
            writing.add(key(conn.connection))

    def releasing(end: Callable[[Any], None]) -> Callable[[Any], None]:
        def ended(connection: Any) -> None:
            try:
                end(connection)
            finally:
                if key(connection) in writing:
                    writing.discard(key(connection))
                    lock.release()

        return ended

    dialect = engine.dialect
    dialect.do_commit = releasing(dialect.do_commit)  # type: ignore[method-assign]
    dialect.do_rollback = releasing(dialect.do_rollback)  # type: ignore[method-assign]


def _refuse_closed(_dbapi_connection, _record, proxy) -> None:  # type: ignore[no-untyped-def]
    # A restarted Postgres closes every connection, and asyncpg sees that without asking the
    # server: the pool then opens a new one. (`pool_pre_ping` asks, with a transaction of its
    # own: three round trips on every checkout, several per chat turn.)
    if proxy.driver_connection.is_closed():
        raise DisconnectionError("the database closed this connection")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
