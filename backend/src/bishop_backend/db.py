"""Async database engine and sessions: Postgres via asyncpg or SQLite via aiosqlite."""

import asyncio
import os
import sqlite3
import weakref
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
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
        database = make_url(url).database
        # One queue per file, however its path is spelled.
        path = os.path.realpath(database) if database and database != ":memory:" else ":memory:"
        engine = create_async_engine(url, async_creator=lambda: _InlineSqlite(path), **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _one_writer_at_a_time(engine.sync_engine, path)
        return engine
    engine = create_async_engine(url, **pool)
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


class _InlineSqlite(aiosqlite.Connection):
    """An aiosqlite connection whose statements run on the event loop's thread.

    aiosqlite hands every call (cursor, execute, fetch, close: four per statement) to a thread
    of its own and back, and each hand-over waits for the GIL: a statement that SQLite answers
    in microseconds cost about a millisecond, and most of an embedded chat turn went there.
    Statements on a local SQLite file are short, and the one wait that could be long, for
    another writer, cannot happen in this process: writers queue before their first write (see
    `_one_writer_at_a_time`). Only connecting and closing still use aiosqlite's thread."""

    def __init__(self, path: str) -> None:
        super().__init__(
            lambda: sqlite3.connect(path, timeout=BUSY_SECONDS, check_same_thread=False),
            iter_chunk_size=64,
        )
        self._thread.daemon = True  # as SQLAlchemy makes aiosqlite's own: exit never waits

    async def _execute(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


# How long a statement waits for a lock held outside this process's queue (another process
# writing the same file): on the loop's thread, so briefly; then "database is locked", which
# the API answers with 503 and the bus retries.
BUSY_SECONDS = 2.0
# How long a writer waits its turn in the queue before it gives up the same way.
QUEUE_SECONDS = 30.0
# Statements that write, or may: they take a place in the queue first.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _writes(statement: str, context: Any) -> bool:
    head = statement.lstrip().upper()
    if head.startswith("WITH"):
        # A common table expression leads a read (a chat's history) or a write: the compiled
        # statement says which, so that a read does not queue behind the writers.
        return bool(context is None or context.isinsert or context.isupdate or context.isdelete)
    return head.startswith(_WRITES)


# One queue of writers per database file and event loop, shared by every engine on the file.
_writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _writer_lock(path: str) -> asyncio.Lock:
    locks = _writer_locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(path, asyncio.Lock())


def _one_writer_at_a_time(engine: Engine, path: str) -> None:
    """SQLite lets one transaction write at a time, and a writer that finds it taken sleeps in
    SQLite's busy handler (1 ms, growing to 100 ms) before it tries again: in a burst of writes
    some wait far longer than the lock is held. Here writers queue on an asyncio lock instead,
    from their first write to their commit or rollback, and each goes as soon as the one before
    it is done (in bench/load.py, send p95 64-74 ms instead of 132-193)."""
    from sqlalchemy.util import await_only

    writing: dict[int, asyncio.Lock] = {}

    def key(connection: Any) -> int:
        # The events hand over the pool's proxy, the dialect the driver's connection.
        return id(getattr(connection, "dbapi_connection", connection))

    @event.listens_for(engine, "before_cursor_execute")
    def take(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        writes = _writes(statement, context)
        if writes and key(conn.connection) not in writing:
            lock = _writer_lock(path)
            try:
                await_only(_acquire(lock))
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
            writing[key(conn.connection)] = lock

    def release(connection: Any, *_: Any) -> None:
        if (lock := writing.pop(key(connection), None)) is not None:
            lock.release()

    def releasing(end: Callable[[Any], None]) -> Callable[[Any], None]:
        def ended(connection: Any) -> None:
            try:
                end(connection)
            finally:
                release(connection)

        return ended

    dialect = engine.dialect
    dialect.do_commit = releasing(dialect.do_commit)  # type: ignore[method-assign]
    dialect.do_rollback = releasing(dialect.do_rollback)  # type: ignore[method-assign]
    # A connection thrown away in mid-transaction (invalidated after an error) is never rolled
    # back through the dialect: its place in the queue is given up here.
    for gone in ("invalidate", "soft_invalidate", "close", "close_detached"):
        event.listen(engine, gone, release)


async def _acquire(lock: asyncio.Lock) -> None:
    # In the caller's own task: a free lock is taken without giving the loop away (wait_for
    # ran the acquire as a task of its own, so every transaction's first write let every other
    # ready task run while it already held its place, and a relay that was stamping its events
    # kept the next writer waiting behind a whole reply's handler).
    async with asyncio.timeout(QUEUE_SECONDS):
        await lock.acquire()


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
