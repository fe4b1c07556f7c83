"""The bus interface and the delivery rules every implementation shares.

- An outage (database, storage, state or broker unreachable: `faults.is_transient`) is retried
  with backoff for as long as it lasts, up to `outage_retry_seconds`.
- Any other failure is retried `poison_attempts` times; an event that still fails, is
  malformed, or is on the wrong topic is poison: it goes to the dead-letter topic with the
  reason, and the backend marks what it belonged to as failed. Nothing is dropped silently.
"""

import asyncio
import json
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bishop_contracts.events import (
    DeadLetter,
    Event,
    derive_event_id,
    parse_event,
    topic_accepts,
)
from bishop_contracts.topics import Topic

from bishop_infra.faults import is_transient

log = logging.getLogger("bishop.bus")

Handler = Callable[[Event], Awaitable[None]]
ORIGINAL_LIMIT = 20_000
_DEAD_LETTER_NAMESPACE = uuid.UUID("4f1f6c52-8f8e-4d7c-9c59-3b2f0a1d7e11")
_ID_FIELDS = ("avatar_id", "message_id", "material_id", "run_id")


@dataclass(frozen=True)
class Subscription:
    group: str
    topics: tuple[Topic, ...]
    handler: Handler
    # Events handled at once by the in-process bus; above 1, their order is not kept. Kafka
    # handles its partitions side by side (each one's records queued for a task of its own,
    # polling going on) and one record of a partition at a time (its commit is the partition's
    # position), whatever this says.
    concurrency: int = 1


class Bus(ABC):
    """Publish events to topics; deliver them to handlers at least once, in order per key."""

    def __init__(
        self,
        *,
        outage_retry_seconds: float = 600.0,
        poison_attempts: int = 3,
        retry_delay: float = 0.2,
        max_retry_delay: float = 10.0,
    ) -> None:
        self._subscriptions: list[Subscription] = []
        self.outage_retry_seconds = outage_retry_seconds
        self.poison_attempts = poison_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay

    def subscribe(
        self, group: str, topics: Sequence[Topic], handler: Handler, *, concurrency: int = 1
    ) -> None:
        """Register a consumer group's handler; takes effect at `start`. `concurrency` events
        may be handled at once, in no particular order (for requests that are independent)."""
        self._subscriptions.append(Subscription(group, tuple(topics), handler, max(1, concurrency)))

    async def publish(self, topic: Topic, event: Event) -> None:
        if not topic_accepts(topic, event):
            raise ValueError(f"{event.event} does not belong on topic {topic}")
        await self.publish_raw(topic, event.key, event.to_bytes())

    async def publish_raw(self, topic: str, key: str | None, value: bytes) -> None:
        """Send an already serialised event (the outbox relay stores events as bytes)."""
        await self._send(Topic(topic), key, value)

    async def publish_many_raw(
        self, messages: Sequence[tuple[str, str | None, bytes]]
    ) -> list[Exception | None]:
        """Send serialised events in order; per message, None or the error that refused it.
        A broker that pipelines (Kafka) waits for all the acknowledgements at once."""
        outcomes: list[Exception | None] = []
        for topic, key, value in messages:
            try:
                await self.publish_raw(topic, key, value)
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    @abstractmethod
    async def _send(self, topic: Topic, key: str | None, value: bytes) -> None: ...

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def deliver(self, subscription: Subscription, topic: str, value: bytes) -> None:
        """Hand one raw message to a handler under the rules in the module's docstring; returns
        only when the event is handled or dead-lettered."""
        try:
            event = parse_event(value)
        except ValueError as exc:
            await self._dead_letter(subscription, topic, value, None, f"malformed: {_first(exc)}")
            return
        if not topic_accepts(Topic(topic), event):
            reason = f"{event.event} does not belong on topic {topic}"
            await self._dead_letter(subscription, topic, value, event, reason)
            return
        delay = self.retry_delay
        outage_since: float | None = None
        failures = 0
        while True:
            try:
                await subscription.handler(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    now = time.monotonic()
                    outage_since = outage_since or now
                    if now - outage_since >= self.outage_retry_seconds:
                        minutes = self.outage_retry_seconds / 60
                        reason = f"a service stayed unavailable for {minutes:g} min: {_first(exc)}"
                        await self._dead_letter(subscription, topic, value, event, reason)
                        return
                    log.warning(
                        "%s %s: outage (%s), retrying in %.1fs",
                        event.event,
                        event.event_id,
                        _first(exc),
                        delay,
                    )
                else:
                    failures += 1
                    if failures >= self.poison_attempts:
                        log.exception(
                            "%s %s failed %d times", event.event, event.event_id, failures
                        )
                        reason = f"{type(exc).__name__}: {_first(exc)}"
                        await self._dead_letter(subscription, topic, value, event, reason)
                        return
                    log.warning(
                        "handler for %s %s failed (attempt %d), retrying",
                        event.event,
                        event.event_id,
                        failures,
                        exc_info=True,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)

    async def _dead_letter(
        self,
        subscription: Subscription,
        topic: str,
        value: bytes,
        event: Event | None,
        reason: str,
    ) -> None:
        """Publish the poison event to the dead-letter topic, retrying while the broker is down,
        so that what it belonged to is failed instead of waiting forever."""
        log.error(
            "dead letter from %s on %s: %s | %r", subscription.group, topic, reason, value[:300]
        )
        if isinstance(event, DeadLetter) or topic == Topic.DEAD_LETTER:
            return  # a dead letter that cannot be handled has nowhere further to go
        ids = _ids(event, value)
        cause = (
            event.event_id
            if event is not None
            else uuid.uuid5(_DEAD_LETTER_NAMESPACE, value[:ORIGINAL_LIMIT].decode(errors="replace"))
        )
        letter = DeadLetter(
            event_id=derive_event_id(cause, f"dead-letter:{subscription.group}"),
            group=subscription.group,
            topic=topic,
            reason=reason[:2000],
            original_event=event.event if event is not None else None,
            original_event_id=event.event_id if event is not None else None,
            original=value[:ORIGINAL_LIMIT].decode(errors="replace"),
            **ids,
        )
        delay = self.retry_delay
        while True:
            try:
                await self.publish(Topic.DEAD_LETTER, letter)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dead letter not yet published (%s); retrying", _first(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)


def _ids(event: Event | None, value: bytes) -> dict[str, Any]:
    """The ids of what a poison event concerned, from the event or, if it did not parse, from
    whatever JSON it holds."""
    if event is not None:
        return {name: getattr(event, name, None) for name in _ID_FIELDS}
    try:
        raw = json.loads(value)
    except ValueError:
        return {}
    found: dict[str, Any] = {}
    if isinstance(raw, dict):
        for name in _ID_FIELDS:
            try:
                found[name] = uuid.UUID(str(raw[name]))
            except (KeyError, ValueError):
                continue
    return found


def _first(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:500] if text else type(exc).__name__
