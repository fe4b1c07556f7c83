"""Async database engine and sessions: Postgres via asyncpg or SQLite via aiosqlite."""

from sqlalchemy import event
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
        return engine
    engine = create_async_engine(url, **pool)
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


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
