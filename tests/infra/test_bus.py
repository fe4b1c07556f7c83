"""Delivery guarantees of both bus implementations."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.partitioner import murmur2
from bishop_contracts.events import DeadLetter, Event, SaveResponse, WorkerHealth
from bishop_contracts.topics import Topic
from bishop_infra.bus import Bus, bus_from_url


@pytest.fixture(params=["memory", "kafka"])
async def bus_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "memory":
        yield f"memory://bus-{uuid.uuid4().hex[:8]}"
    else:
        yield f"kafka://{request.getfixturevalue('server_urls').kafka}"


def _event(run: str, n: int) -> WorkerHealth:
    return WorkerHealth(worker=f"{run}-{n}", details={"n": str(n)})


async def _wait(condition, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_failing_handler_is_retried_then_later_events_flow(bus_url: str) -> None:
    run = uuid.uuid4().hex[:6]
    consumer, producer = bus_from_url(bus_url), bus_from_url(bus_url)
    consumer.retry_delay = 0.01
    attempts: dict[int, int] = {}

    async def flaky(event: Event) -> None:
        assert isinstance(event, WorkerHealth)
        if not event.worker.startswith(run):
            return
        n = int(event.details["n"])
        attempts[n] = attempts.get(n, 0) + 1
        if n == 0 and attempts[n] < 3:
            raise ConnectionError("database briefly down")

    consumer.subscribe(f"g-{run}", [Topic.WORKER_HEALTH], flaky)
    await consumer.start()
    await producer.start()
    try:
        for n in range(3):
            await producer.publish(Topic.WORKER_HEALTH, _event(run, n))
        await _wait(lambda: set(attempts) == {0, 1, 2} and attempts[0] == 3)
        await asyncio.sleep(0.2)
        assert attempts == {0: 3, 1: 1, 2: 1}  # retried until it worked, the others once
    finally:
        await producer.stop()
        await consumer.stop()


async def test_kafka_consumer_that_dies_mid_batch_loses_no_event(server_urls) -> None:  # type: ignore[no-untyped-def]
    url = f"kafka://{server_urls.kafka}"
    run, group = uuid.uuid4().hex[:6], f"g-{uuid.uuid4().hex[:6]}"
    producer = bus_from_url(url)
    await producer.start()
    total = 12
    for n in range(total):
        await producer.publish(Topic.WORKER_HEALTH, _event(run, n))

    first_done: set[int] = set()
    stuck: list[int] = []
    never = asyncio.Event()

    async def dies_on_the_fifth(event: Event) -> None:
        assert isinstance(event, WorkerHealth)
        if not event.worker.startswith(run):
            return
        if len(first_done) == 4:
            stuck.append(int(event.details["n"]))
            await never.wait()  # the process "dies" here, mid-batch
        first_done.add(int(event.details["n"]))

    first = bus_from_url(url)
    first.subscribe(group, [Topic.WORKER_HEALTH], dies_on_the_fifth)
    await first.start()
    await _wait(lambda: bool(stuck))
    # The other partitions go on meanwhile: once they are idle, every event they finished is
    # committed too (a kill between a handler's end and its commit would redeliver that event,
    # as at-least-once allows, which the assertion below does not).
    await asyncio.sleep(1.0)
    await first.stop()  # killed: whatever was not handled is not committed

    second_done: set[int] = set()

    async def records(event: Event) -> None:
        assert isinstance(event, WorkerHealth)
        if event.worker.startswith(run):
            second_done.add(int(event.details["n"]))

    second = bus_from_url(url)
    second.subscribe(group, [Topic.WORKER_HEALTH], records)
    await second.start()
    try:
        await _wait(lambda: first_done | second_done == set(range(total)))
        assert stuck[0] in second_done  # the event being handled at the crash came again
        assert not first_done & second_done - {stuck[0]}  # committed events did not
    finally:
        await second.stop()
        await producer.stop()


def _on_partition(partition: int, partitions: int = 3) -> uuid.UUID:
    """A message id whose events the producer sends to `partition` (of the mock's three)."""
    while True:
        candidate = uuid.uuid4()
        if (murmur2(str(candidate).encode()) & 0x7FFFFFFF) % partitions == partition:
            return candidate


async def test_kafka_a_long_delivery_does_not_hold_back_other_partitions(server_urls) -> None:  # type: ignore[no-untyped-def]
    url = f"kafka://{server_urls.kafka}"
    long_reply, quick_reply = _on_partition(0), _on_partition(1)
    started, done = asyncio.Event(), []
    gate = asyncio.Event()

    async def replies(event: Event) -> None:
        if not isinstance(event, SaveResponse):
            return
        if event.message_id == long_reply:
            started.set()
            await gate.wait()  # a reply that takes minutes
        if event.message_id in (long_reply, quick_reply):
            done.append(event.message_id)

    consumer, producer = bus_from_url(url), bus_from_url(url)
    consumer.subscribe(f"g-{uuid.uuid4().hex[:6]}", [Topic.SAVE_RESPONSE], replies)
    await consumer.start()
    await producer.start()
    try:
        await producer.publish(Topic.SAVE_RESPONSE, _numbered(long_reply, 0))
        await asyncio.wait_for(started.wait(), 20)
        # Published after the long one was polled: it is handled while that one still runs.
        await producer.publish(Topic.SAVE_RESPONSE, _numbered(quick_reply, 1))
        await _wait(lambda: quick_reply in done, timeout=10)
        assert long_reply not in done
        gate.set()
        await _wait(lambda: long_reply in done)
    finally:
        gate.set()
        await producer.stop()
        await consumer.stop()


async def test_publish_refuses_an_event_on_the_wrong_topic(bus_url: str) -> None:
    bus: Bus = bus_from_url(bus_url)
    await bus.start()
    try:
        with pytest.raises(ValueError, match="does not belong"):
            await bus.publish(Topic.LLM_TRAIN, WorkerHealth(worker="x"))
    finally:
        await bus.stop()


async def _letters(bus_url: str, run: str, group: str) -> tuple[Bus, list[DeadLetter]]:
    """A consumer of the dead-letter topic that keeps the letters of consumer group `group`."""
    letters: list[DeadLetter] = []
    watcher = bus_from_url(bus_url)

    async def keep(event: Event) -> None:
        if isinstance(event, DeadLetter) and event.group == group:
            letters.append(event)

    watcher.subscribe(f"letters-{run}", [Topic.DEAD_LETTER], keep)
    await watcher.start()
    return watcher, letters


async def test_poison_event_goes_to_the_dead_letter_topic_with_its_ids(bus_url: str) -> None:
    run = uuid.uuid4().hex[:6]
    group = f"g-{run}"
    consumer, producer = bus_from_url(bus_url), bus_from_url(bus_url)
    consumer.retry_delay = 0.01
    calls: list[int] = []
    message_id = uuid.uuid4()

    async def broken(event: Event) -> None:
        if isinstance(event, SaveResponse) and event.message_id == message_id:
            calls.append(1)
            raise ValueError("this event can never be handled")

    consumer.subscribe(group, [Topic.SAVE_RESPONSE], broken)
    watcher, letters = await _letters(bus_url, run, group)
    await consumer.start()
    await producer.start()
    try:
        poison = SaveResponse(message_id=message_id, generated_text="x")
        await producer.publish(Topic.SAVE_RESPONSE, poison)
        # Other tests' leftovers on the topic are dead-lettered too; ours is found by its id.
        await _wait(lambda: any(letter.message_id == message_id for letter in letters))
        [letter] = [letter for letter in letters if letter.message_id == message_id]
        assert len(calls) == consumer.poison_attempts  # a few tries, not forever
        assert letter.message_id == message_id and letter.original_event_id == poison.event_id
        assert letter.topic == Topic.SAVE_RESPONSE and "can never be handled" in letter.reason
        assert SaveResponse.model_validate_json(letter.original) == poison
    finally:
        await producer.stop()
        await consumer.stop()
        await watcher.stop()


async def test_an_outage_is_waited_out_for_as_long_as_it_lasts_then_dead_lettered(
    bus_url: str,
) -> None:
    run = uuid.uuid4().hex[:6]
    group = f"g-{run}"
    consumer = bus_from_url(bus_url, outage_retry_seconds=1.5)
    producer = bus_from_url(bus_url)
    consumer.retry_delay = consumer.max_retry_delay = 0.05
    attempts: dict[str, int] = {}
    outage_over = asyncio.Event()

    async def needs_the_database(event: Event) -> None:
        if not (isinstance(event, WorkerHealth) and event.worker.startswith(run)):
            return
        attempts[event.worker] = attempts.get(event.worker, 0) + 1
        if event.worker.endswith("short") and not outage_over.is_set():
            raise ConnectionRefusedError("database is down")
        if event.worker.endswith("long"):
            raise ConnectionRefusedError("database is down")

    consumer.subscribe(group, [Topic.WORKER_HEALTH], needs_the_database)
    watcher, letters = await _letters(bus_url, run, group)
    await consumer.start()
    await producer.start()
    try:
        await producer.publish(Topic.WORKER_HEALTH, WorkerHealth(worker=f"{run}-short"))
        await _wait(lambda: attempts.get(f"{run}-short", 0) > consumer.poison_attempts + 2)
        outage_over.set()  # far more tries than poison gets, and still not given up
        await producer.publish(Topic.WORKER_HEALTH, WorkerHealth(worker=f"{run}-long"))
        await _wait(lambda: bool(letters))
        assert [letter.original_event for letter in letters] == ["worker_health"]
        assert f"{run}-long" in letters[0].original and "unavailable for" in letters[0].reason
        assert attempts[f"{run}-long"] > consumer.poison_attempts
    finally:
        await producer.stop()
        await consumer.stop()
        await watcher.stop()


def _numbered(reply: uuid.UUID, n: int) -> SaveResponse:
    return SaveResponse(message_id=reply, generated_text=str(n))


async def test_the_in_process_bus_handles_up_to_a_subscriptions_concurrency_at_once() -> None:
    url = f"memory://bus-{uuid.uuid4().hex[:8]}"
    reply = uuid.uuid4()
    consumer, producer = bus_from_url(url), bus_from_url(url)
    inside: set[int] = set()
    done: list[int] = []
    gate = asyncio.Event()

    async def slow(event: Event) -> None:
        if not isinstance(event, SaveResponse) or event.message_id != reply:
            return
        inside.add(int(event.generated_text))
        await gate.wait()
        done.append(int(event.generated_text))

    consumer.subscribe(f"g-{uuid.uuid4().hex[:6]}", [Topic.SAVE_RESPONSE], slow, concurrency=4)
    await consumer.start()
    await producer.start()
    try:
        for n in range(6):
            await producer.publish(Topic.SAVE_RESPONSE, _numbered(reply, n))
        await _wait(lambda: len(inside) == 4)
        await asyncio.sleep(0.3)
        assert len(inside) == 4 and not done  # four at once, and not a fifth
        gate.set()
        await _wait(lambda: sorted(done) == list(range(6)))
    finally:
        gate.set()
        await producer.stop()
        await consumer.stop()
