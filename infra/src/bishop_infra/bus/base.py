"""The bus interface and the delivery rules every implementation shares."""

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bishop_contracts.events import Event, parse_event, topic_accepts
from bishop_contracts.topics import Topic

log = logging.getLogger("bishop.bus")

Handler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    group: str
    topics: tuple[Topic, ...]
    handler: Handler


class Bus(ABC):
    """Publish events to topics; deliver them to handlers at least once, in order per key."""

    def __init__(self, *, max_attempts: int = 5, retry_delay: float = 0.2) -> None:
        self._subscriptions: list[Subscription] = []
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay

    def subscribe(self, group: str, topics: Sequence[Topic], handler: Handler) -> None:
        """Register a consumer group's handler; takes effect at `start`."""
        self._subscriptions.append(Subscription(group, tuple(topics), handler))

    async def publish(self, topic: Topic, event: Event) -> None:
        if not topic_accepts(topic, event):
            raise ValueError(f"{event.event} does not belong on topic {topic}")
        await self._send(topic, event.key, event.to_bytes())

    @abstractmethod
    async def _send(self, topic: Topic, key: str | None, value: bytes) -> None: ...

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def deliver(self, subscription: Subscription, topic: str, value: bytes) -> None:
        """Hand one raw message to a handler: malformed ones are logged and skipped, failing
        handlers are retried with backoff, and after the last attempt the event is logged as
        dead so one poisoned event cannot block its partition forever."""
        try:
            event = parse_event(value)
        except ValueError as exc:
            log.warning("skipping malformed message on %s: %s", topic, _short(exc, value))
            return
        if not topic_accepts(Topic(topic), event):
            log.warning("skipping %s: it does not belong on topic %s", event.event, topic)
            return
        delay = self.retry_delay
        for attempt in range(1, self.max_attempts + 1):
            try:
                await subscription.handler(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == self.max_attempts:
                    log.exception(
                        "dead event %s %s after %d attempts: %s",
                        event.event,
                        event.event_id,
                        attempt,
                        value[:2000],
                    )
                    return
                log.warning(
                    "handler for %s %s failed (attempt %d), retrying",
                    event.event,
                    event.event_id,
                    attempt,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def _short(exc: Exception, value: bytes) -> str:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{first_line} | {value[:200]!r}"
