"""The transactional outbox: a state change and the events it causes commit together.

Services call `emit(session, topic, event)` instead of publishing; the event is a row of the
same transaction as the change, so either both happen or neither does. The relay publishes
unsent rows in id order (at least once, in order per key: consumers drop redeliveries by
event id) and stamps them sent. It wakes at once after a commit that emitted, and polls as a
fallback for rows other processes wrote. On Postgres an advisory lock lets one backend relay at
a time, so several replicas keep the order.
"""

import asyncio
import contextlib
import logging
import weakref
from datetime import timedelta

from bishop_contracts.events import Event, topic_accepts
from bishop_contracts.topics import Topic
from bishop_infra.faults import is_transient
from sqlalchemy import Engine, bindparam, delete, event, text, update
from sqlalchemy.orm import Session
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.infra import Infra
from bishop_backend.models import OutboxEvent
from bishop_backend.models.common import utcnow

log = logging.getLogger("bishop.outbox")

BATCH = 200
POLL_SECONDS = 1.0
KEEP_SENT = timedelta(hours=1)
# Any constant: the key of the Postgres advisory lock the relays share.
RELAY_LOCK = 0x6B15_0B0C
_WAKE = "outbox_wake"
_relays: weakref.WeakKeyDictionary[Engine, asyncio.Event] = weakref.WeakKeyDictionary()


def emit(session: AsyncSession, topic: Topic, event_: Event) -> None:
    """Queue `event_` on `topic`, to be published once the session commits."""
    if not topic_accepts(topic, event_):
        raise ValueError(f"{event_.event} does not belong on topic {topic}")
    session.add(
        OutboxEvent(
            topic=topic.value,
            key=event_.key,
            event_id=event_.event_id,
            event=event_.event,
            payload=event_.model_dump_json(),
        )
    )
    session.sync_session.info[_WAKE] = True


@event.listens_for(Session, "after_commit")
def _wake_relay(session: Session) -> None:
    if session.info.pop(_WAKE, False):
        bind = session.get_bind()
        engine = bind if isinstance(bind, Engine) else bind.engine
        if (wake := _relays.get(engine)) is not None:
            wake.set()


@event.listens_for(Session, "after_rollback")
def _forget_wake(session: Session) -> None:
    session.info.pop(_WAKE, None)


# A relay's statements run twice a chat turn: built once, with parameters. Columns, not row
# objects: nothing here changes a row through the session.
_UNSENT = (
    select(
        OutboxEvent.id,
        OutboxEvent.topic,
        OutboxEvent.key,
        OutboxEvent.payload,
        OutboxEvent.event,
        OutboxEvent.event_id,
    )
    .where(col(OutboxEvent.sent_at).is_(None))
    .order_by(col(OutboxEvent.id))
    .limit(BATCH)
)
_STAMP = (
    update(OutboxEvent)
    .where(col(OutboxEvent.id).in_(bindparam("ids", expanding=True)))
    .values(sent_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


class OutboxRelay:
    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self._wake = asyncio.Event()
        _relays[infra.engine.sync_engine] = self._wake
        self._postgres = infra.engine.dialect.name == "postgresql"
        self._passes = 0

    async def relay_once(self) -> int:
        """Publish one batch of unsent events; returns how many were due."""
        async with self.infra.sessions() as session:
            if self._postgres:
                locked = await session.exec(  # type: ignore[call-overload]
                    text("SELECT pg_try_advisory_xact_lock(:key)"), params={"key": RELAY_LOCK}
                )
                if not locked.scalar():
                    return 0
            rows = list((await session.exec(_UNSENT)).all())
            outcomes = await self.infra.bus.publish_many_raw(
                [(row.topic, row.key, row.payload.encode()) for row in rows]
            )
            sent: list[int] = []
            outage: Exception | None = None
            for row, error in zip(rows, outcomes, strict=True):
                if error is not None and is_transient(error):
                    # Stop at the first event the outage kept back: everything after it waits
                    # too, so the order per key holds (what was sent meanwhile is sent again,
                    # and consumers drop it by event id).
                    outage = error
                    break
                if error is not None:
                    # It can never be sent (too large, an unknown topic): stamped and left, so
                    # it does not hold every later event back. What it belonged to is failed
                    # by the sweeper when its deadline passes.
                    log.error("outbox %s %s cannot be sent: %s", row.event, row.event_id, error)
                sent.append(row.id)
            # What was published is stamped even if a later one met an outage, so a retry
            # repeats as little as possible.
            if sent:
                await session.exec(  # type: ignore[call-overload]
                    _STAMP, params={"ids": sent, "now": utcnow()}
                )
                await session.commit()
            if outage is not None:
                raise outage
        self._passes += 1
        if self._passes % 500 == 0:
            await self._prune()
        return len(rows)

    async def _prune(self) -> None:
        async with self.infra.sessions() as session:
            cutoff = utcnow() - KEEP_SENT
            await session.exec(  # type: ignore[call-overload]
                delete(OutboxEvent).where(col(OutboxEvent.sent_at) < cutoff)
            )
            await session.commit()

    async def run(self) -> None:
        """Relay until cancelled; an outage of the database or the broker is waited out."""
        delay = 0.2
        while True:
            try:
                self._wake.clear()
                if await self.relay_once() >= BATCH:
                    continue
                delay = 0.2
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


async def discard_unsent(session: AsyncSession) -> None:
    """Embedded mode restarts with nothing in flight: events still unsent belong to work the
    sweeper fails at startup, and must not revive it."""
    await session.exec(  # type: ignore[call-overload]
        update(OutboxEvent).where(col(OutboxEvent.sent_at).is_(None)).values(sent_at=utcnow())
    )
