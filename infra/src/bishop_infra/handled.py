"""Events a consumer group has already handled, remembered by event id in the shared state, so
that a redelivered event (after a crash, a rebalance or a resend) is skipped, not recomputed."""

import asyncio
import logging
import uuid
from collections.abc import Callable

from bishop_contracts.events import Event

from bishop_infra.bus.base import Handler
from bishop_infra.state import State

log = logging.getLogger("bishop.handled")
# Longer than any redelivery can come late: Kafka keeps a topic's records for 7 days by default.
HANDLED_TTL = 8 * 24 * 3600.0


class HandledEvents:
    def __init__(self, state: State, group: str, ttl: float = HANDLED_TTL) -> None:
        self.state = state
        self.group = group
        self.ttl = ttl
        # Handled right now in this process: a subscription that handles events side by side
        # may meet a redelivery while the original is still running.
        self._running: dict[uuid.UUID, asyncio.Future[None]] = {}

    def _key(self, event_id: uuid.UUID) -> str:
        return f"handled:{self.group}:{event_id}"

    async def seen(self, event_id: uuid.UUID) -> bool:
        return await self.state.get_value(self._key(event_id)) is not None

    async def mark(self, event_id: uuid.UUID) -> None:
        await self.state.set_value(self._key(event_id), "1", self.ttl)

    def once(self, handler: Handler, *, skip: Callable[[Event], bool] | None = None) -> Handler:
        """`handler`, run at most once per event id: marked only after it returns, so an event
        whose handling was cut short (the process died) is handled again. `skip` exempts
        events that are cheap and must always be answered (health checks)."""

        async def handle(event: Event) -> None:
            if skip is not None and skip(event):
                await handler(event)
                return
            if (running := self._running.get(event.event_id)) is not None:
                # Its twin is being handled: this one ends with it (and fails with it, so that
                # the bus retries it if the twin did not get through).
                await asyncio.shield(running)
                return
            if await self.seen(event.event_id):
                log.info("%s %s already handled; skipped", event.event, event.event_id)
                return
            done = self._running[event.event_id] = asyncio.get_running_loop().create_future()
            try:
                await handler(event)
                await self.mark(event.event_id)
            except BaseException as exc:
                done.set_exception(exc)
                done.exception()  # retrieved: nobody may be waiting on it
                raise
            else:
                done.set_result(None)
            finally:
                del self._running[event.event_id]

        return handle
