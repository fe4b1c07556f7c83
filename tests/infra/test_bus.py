"""Delivery guarantees of both bus implementations."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from bishop_contracts.events import Event, WorkerHealth
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


async def test_publish_refuses_an_event_on_the_wrong_topic(bus_url: str) -> None:
    bus: Bus = bus_from_url(bus_url)
    await bus.start()
    try:
        with pytest.raises(ValueError, match="does not belong"):
            await bus.publish(Topic.LLM_TRAIN, WorkerHealth(worker="x"))
    finally:
        await bus.stop()
