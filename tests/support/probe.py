"""The test's seat on the bus: it sees what the backend publishes and plays the workers' part."""

import asyncio
import uuid
from collections.abc import Callable

from bishop_contracts.events import Event
from bishop_contracts.topics import Topic
from bishop_infra.bus import Bus

WATCHED = (
    Topic.LLM_TRAIN,
    Topic.LLM_INFERENCE,
    Topic.LLM_CANCEL,
    Topic.SOUND_INFERENCE,
    Topic.MATERIALS,
)


class BusProbe:
    def __init__(self, bus: Bus, topics: tuple[Topic, ...] = WATCHED) -> None:
        self.bus = bus
        self.seen: list[Event] = []
        self._changed = asyncio.Event()
        bus.subscribe(f"probe-{uuid.uuid4().hex[:8]}", topics, self._record)

    async def _record(self, event: Event) -> None:
        self.seen.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 15) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.seen:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    def all(self, predicate: Callable[[Event], bool]) -> list[Event]:
        return [e for e in self.seen if predicate(e)]

    async def publish(self, topic: Topic, event: Event) -> None:
        await self.bus.publish(topic, event)

    async def publish_raw(self, topic: Topic, value: bytes, key: str | None = None) -> None:
        await self.bus._send(topic, key, value)
