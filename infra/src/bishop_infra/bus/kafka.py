"""Kafka bus over aiokafka: idempotent producer, manual commits after handling (at least once)."""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition
from bishop_contracts.topics import Topic

from bishop_infra.bus.base import Bus, Subscription
from bishop_infra.faults import is_transient

log = logging.getLogger("bishop.bus")

# Records queued for one partition's delivery task beyond which the partition is paused.
PAUSE_AT = 200


def _rewind(
    consumer: AIOKafkaConsumer, partition: TopicPartition, queue: deque[ConsumerRecord], to: int
) -> None:
    """Drop what is queued and fetch the partition again from offset `to`. No await in between:
    the seek also drops what was fetched before it, so nothing past `to` gets in first."""
    queue.clear()
    with contextlib.suppress(IllegalStateError):  # no longer this consumer's partition
        consumer.seek(partition, to)


class KafkaBus(Bus):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "bishop",
        fetch_max_wait_ms: int = 100,
        **kwargs: float,
    ) -> None:
        super().__init__(**kwargs)
        self.bootstrap_servers = bootstrap_servers
        # A broker answers a fetch as soon as data arrives; this bounds only idle polls, and
        # brokers that do not wake fetches early (librdkafka's mock cluster) add it per hop.
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._consumers: list[AIOKafkaConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
        )
        await self._producer.start()
        for sub in self._subscriptions:
            consumer = AIOKafkaConsumer(
                *sub.topics,
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id,
                group_id=sub.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                heartbeat_interval_ms=1000,
                session_timeout_ms=10000,
                retry_backoff_ms=50,
                fetch_max_wait_ms=self.fetch_max_wait_ms,
                # Workers hand long jobs to threads and await them inside the poll loop; give
                # them room before the group declares the consumer dead.
                max_poll_interval_ms=30 * 60 * 1000,
            )
            await consumer.start()
            self._consumers.append(consumer)
            self._tasks.append(asyncio.create_task(self._consume(sub, consumer)))

    async def _send(self, topic: Topic, key: str | None, value: bytes) -> None:
        if self._producer is None:
            raise RuntimeError("bus is not started")
        await self._producer.send_and_wait(topic, value, key=key.encode() if key else None)

    async def publish_many_raw(
        self, messages: Sequence[tuple[str, str | None, bytes]]
    ) -> list[Exception | None]:
        # Everything is queued first, then the acknowledgements are awaited together: a batch
        # costs about one round trip, not one per message. The idempotent producer keeps the
        # order within a partition.
        if self._producer is None:
            raise RuntimeError("bus is not started")
        pending: list[asyncio.Future[object] | Exception] = []
        for topic, key, value in messages:
            try:
                pending.append(
                    await self._producer.send(
                        Topic(topic), value, key=key.encode() if key else None
                    )
                )
            except Exception as exc:  # refused before sending: too large, unknown topic
                pending.append(exc)
        outcomes: list[Exception | None] = []
        for item in pending:
            if isinstance(item, Exception):
                outcomes.append(item)
                continue
            try:
                await item
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    async def _consume(self, sub: Subscription, consumer: AIOKafkaConsumer) -> None:
        """Poll, and queue each partition's records for a task of its own that delivers them
        one at a time, in order (a partition's commit is its position), while polling goes on:
        a reply that takes a minute on one partition does not hold back a new one on another.
        A partition whose queue is long is paused until its task has caught up (a paused
        partition's prefetched records are dropped and fetched again, so a short queue is not
        paused: under a steady load that refetch made every reply wait longer)."""
        queues: dict[TopicPartition, deque[ConsumerRecord]] = {}
        running: dict[TopicPartition, asyncio.Task[None]] = {}
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The consumer must outlive any one failure (a broker restart, a rebalance).
                log.exception("consumer %s: poll failed; polling again", sub.group)
                await asyncio.sleep(1.0)
                continue
            for partition, records in batches.items():
                queue = queues.setdefault(partition, deque())
                queue.extend(records)
                if len(queue) >= PAUSE_AT:
                    with contextlib.suppress(IllegalStateError):  # revoked since the poll
                        consumer.pause(partition)
                if partition not in running:
                    task = asyncio.create_task(
                        self._drain(sub, consumer, partition, queue, running)
                    )
                    running[partition] = task
                    self._tasks.append(task)
                    task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _drain(
        self,
        sub: Subscription,
        consumer: AIOKafkaConsumer,
        partition: TopicPartition,
        queue: deque[ConsumerRecord],
        running: dict[TopicPartition, asyncio.Task[None]],
    ) -> None:
        """Deliver the partition's queued records in order until none is left."""
        record: ConsumerRecord | None = None
        try:
            while queue:
                record = queue[0]
                await self.deliver(sub, record.topic, record.value or b"")
                queue.popleft()
                # Commit each handled record: a consumer that dies mid-queue resumes right
                # after the last event it finished, and the handlers' event-id check absorbs
                # the one it may have been handling.
                if not await self._commit(consumer, partition, record.offset + 1):
                    # The partition went to another consumer in a rebalance, which delivers
                    # the rest from the last commit. Should it have come back to this one, the
                    # fetch goes on right after this record.
                    _rewind(consumer, partition, queue, record.offset + 1)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer %s on %s", sub.group, partition)
            # Not committed: this record and what follows it are read again.
            if record is not None:
                _rewind(consumer, partition, queue, record.offset)
        finally:
            # No await between the last look at the queue and this: records the poll adds
            # from now on start a new task.
            if running.get(partition) is asyncio.current_task():
                del running[partition]
            # The partition may be gone: revoked meanwhile, or the consumer stopped.
            with contextlib.suppress(Exception):
                if partition in consumer.paused():
                    consumer.resume(partition)

    async def _commit(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, offset: int
    ) -> bool:
        """Whether the offset was committed (False: the partition is no longer this
        consumer's)."""
        delay = self.retry_delay
        while True:
            try:
                await consumer.commit({partition: OffsetAndMetadata(offset, "")})
                return True
            except (CommitFailedError, IllegalStateError):
                return False  # the partition moved to another consumer
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("commit of %s failed (%s); retrying", partition, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for consumer in self._consumers:
            await consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        self._tasks.clear()
        self._consumers.clear()
        self._producer = None
