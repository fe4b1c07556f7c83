"""In-process bus for embedded mode: every service in the process shares one broker by name.

Like Kafka, a message goes to every consumer group subscribed to its topic, and within a group
to one consumer; unlike Kafka, nothing outlives the process.
"""

import asyncio
import contextlib
import logging

from bishop_contracts.topics import Topic

from bishop_infra.bus.base import Bus, Subscription

log = logging.getLogger("bishop.bus")


class MemoryBroker:
    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], asyncio.Queue[bytes]] = {}

    def queue(self, group: str, topic: str) -> asyncio.Queue[bytes]:
        return self._queues.setdefault((group, topic), asyncio.Queue())

    def put(self, topic: str, value: bytes) -> None:
        for (_, queue_topic), queue in self._queues.items():
            if queue_topic == topic:
                queue.put_nowait(value)


_brokers: dict[str, MemoryBroker] = {}


def shared_broker(name: str) -> MemoryBroker:
    return _brokers.setdefault(name, MemoryBroker())


class MemoryBus(Bus):
    def __init__(self, broker: MemoryBroker, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.broker = broker
        self._tasks: list[asyncio.Task[None]] = []

    async def _send(self, topic: Topic, key: str | None, value: bytes) -> None:
        self.broker.put(topic, value)

    async def start(self) -> None:
        for sub in self._subscriptions:
            for topic in sub.topics:
                queue = self.broker.queue(sub.group, topic)
                for _ in range(sub.concurrency):
                    self._tasks.append(asyncio.create_task(self._consume(sub, topic, queue)))

    async def _consume(self, sub: Subscription, topic: str, queue: asyncio.Queue[bytes]) -> None:
        while True:
            value = await queue.get()
            try:
                await self.deliver(sub, topic, value)
            finally:
                queue.task_done()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
