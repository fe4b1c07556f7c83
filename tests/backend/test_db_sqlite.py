"""The embedded database: statements run on the event loop's thread, and writers queue on one
lock per database file, however many engines the process opens on it."""

import asyncio
import threading
from pathlib import Path

from bishop_backend.db import create_engine
from sqlalchemy import column, event, select, table, text, update


async def test_statements_run_on_the_event_loops_thread(tmp_path: Path) -> None:
    """A statement handed to a thread and back cost a millisecond where SQLite needs
    microseconds; here SQLite itself reports the thread that ran it."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bishop.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def thread_function(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.create_function("thread_id", 0, threading.get_ident)

    try:
        async with engine.connect() as conn:
            ran_on = (await conn.execute(text("SELECT thread_id()"))).scalar_one()
        assert ran_on == threading.get_ident()
    finally:
        await engine.dispose()


async def test_two_engines_on_one_file_take_turns_to_write(tmp_path: Path) -> None:
    """A second engine's writer waits for the first one's commit on the shared queue; with a
    queue per engine it would wait in SQLite's busy handler, on the loop's thread, where the
    first writer can never commit (until the busy timeout fails it)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bishop.db'}"
    first, second = create_engine(url), create_engine(url)
    try:
        async with first.begin() as conn:
            await conn.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))

        async def write(engine, body: str) -> None:  # type: ignore[no-untyped-def]
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO note (body) VALUES (:b)"), {"b": body})

        async with first.begin() as conn:
            await conn.execute(text("INSERT INTO note (body) VALUES ('first')"))
            waiting = asyncio.create_task(write(second, "second"))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # queued behind the open transaction
        async with asyncio.timeout(5):
            await waiting
        async with second.connect() as conn:
            bodies = (await conn.execute(text("SELECT body FROM note ORDER BY id"))).scalars()
            assert list(bodies) == ["first", "second"]
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_connection_thrown_away_mid_transaction_gives_up_its_place(tmp_path: Path) -> None:
    """An invalidated connection (after an error that looks like a lost connection) is never
    rolled back through the dialect: without letting its place go, every later write waited."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bishop.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE note (body TEXT)"))
        async with engine.connect() as conn:
            await conn.execute(text("INSERT INTO note VALUES ('lost')"))
            await conn.invalidate()
        async with asyncio.timeout(5), engine.begin() as conn:
            await conn.execute(text("INSERT INTO note VALUES ('kept')"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT body FROM note"))).scalars().all() == ["kept"]
    finally:
        await engine.dispose()


async def test_a_read_led_by_a_common_table_expression_does_not_queue_behind_a_writer(
    tmp_path: Path,
) -> None:
    """A chat's history is a `WITH … SELECT`: it reads while another transaction writes. A
    `WITH` that leads an update still takes its place in the writers' queue."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bishop.db'}"
    writer, reader = create_engine(url), create_engine(url)
    note = table("note", column("id"), column("body"))
    recent = select(note.c.id).where(note.c.id > 0).cte("recent")
    try:
        async with writer.begin() as conn:
            await conn.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
            await conn.execute(text("INSERT INTO note (body) VALUES ('first')"))
        async with writer.begin() as conn:
            await conn.execute(text("INSERT INTO note (body) VALUES ('second')"))
            async with asyncio.timeout(2), reader.connect() as other:
                ids = (await other.execute(select(recent.c.id))).scalars()
                assert list(ids) == [1]  # read without waiting for the open write
            updating = update(note).where(note.c.id.in_(select(recent.c.id))).values(body="x")

            async def update_in_turn() -> None:
                async with reader.begin() as other:
                    await other.execute(updating)

            waiting = asyncio.create_task(update_in_turn())
            await asyncio.sleep(0.2)
            assert not waiting.done()  # queued behind the open transaction
        async with asyncio.timeout(5):
            await waiting
    finally:
        await writer.dispose()
        await reader.dispose()
