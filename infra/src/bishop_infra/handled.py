"""Events a consumer group has already handled, remembered by event id in the shared state, so
that a redelivered event (after a crash, a rebalance or a resend) is skipped, not recomputed."""

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
            if await self.seen(event.event_id):
                log.info("%s %s already handled; skipped", event.event, event.event_id)
                return
            await handler(event)
            await self.mark(event.event_id)

        return handle
