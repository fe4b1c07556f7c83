"""Both implementations of object storage and of shared state behave the same."""

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bishop_infra.state import LockTimeout, State, state_from_url
from bishop_infra.storage import ObjectNotFound, Storage, storage_from_url


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    url = (
        f"file://{tmp_path}/objects"
        if request.param == "local"
        else request.getfixturevalue("server_urls").s3
    )
    store = storage_from_url(url)
    await store.ensure_ready()
    yield store


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[State]:
    if request.param == "memory":
        yield state_from_url(f"memory://state-{uuid.uuid4().hex[:8]}")
    else:
        s = state_from_url(request.getfixturevalue("server_urls").redis)
        yield s
        await s.close()


async def test_objects_stream_in_and_out(storage: Storage) -> None:
    prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"
    body = bytes(range(256)) * 4096  # 1 MiB: several chunks
    await storage.put_stream(prefix + "audio/a.wav", io.BytesIO(body), len(body), "audio/wav")
    await storage.put_bytes(prefix + "text/b.txt", b"hello", "text/plain")
    assert await storage.size(prefix + "audio/a.wav") == len(body)
    chunks = [c async for c in storage.read_stream(prefix + "audio/a.wav")]
    assert len(chunks) > 1 and b"".join(chunks) == body

    await storage.delete(prefix + "text/b.txt")
    assert not await storage.exists(prefix + "text/b.txt")
    await storage.delete(prefix + "text/b.txt")  # deleting twice is fine
    assert await storage.delete_prefix(prefix) == 1
    with pytest.raises(ObjectNotFound):
        await storage.get_bytes(prefix + "audio/a.wav")


async def test_objects_read_in_part(storage: Storage) -> None:
    key = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/audio/a.wav"
    body = bytes(range(256)) * 4096
    await storage.put_bytes(key, body, "audio/wav")

    async def part(start: int, length: int | None) -> bytes:
        return b"".join([c async for c in storage.read_stream(key, start, length)])

    assert await part(0, 10) == body[:10]
    assert await part(300_000, 500_000) == body[300_000:800_000]  # across chunks
    assert await part(len(body) - 7, None) == body[-7:]
    assert await part(5, 0) == b""


async def test_keys_cannot_escape(storage: Storage) -> None:
    for key in ("../etc/passwd", "/abs", "a/../../b", ""):
        with pytest.raises(ValueError):
            await storage.put_bytes(key, b"x", "text/plain")


async def test_claims_values_and_fields(state: State) -> None:
    key = f"test:{uuid.uuid4()}"
    assert await state.claim(key, ttl=5)
    assert not await state.claim(key, ttl=5)
    await state.set_value(key + ":v", "1", ttl=0.2)
    assert await state.get_value(key + ":v") == "1"
    await asyncio.sleep(0.3)
    assert await state.get_value(key + ":v") is None
    await state.put_field(key + ":h", "0", "a", ttl=5)
    await state.put_field(key + ":h", "1", "b", ttl=5)
    await state.put_field(key + ":h", "0", "a", ttl=5)
    assert await state.get_fields(key + ":h") == {"0": "a", "1": "b"}
    await state.delete_field(key + ":h", "0")
    assert await state.get_fields(key + ":h") == {"1": "b"}
    await state.delete(key + ":h")
    assert await state.get_fields(key + ":h") == {}


async def test_lock_excludes(state: State) -> None:
    name = f"lock-{uuid.uuid4()}"
    inside = 0
    peak = 0

    async def critical() -> None:
        nonlocal inside, peak
        async with state.lock(name, ttl=5, wait=5):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.05)
            inside -= 1

    await asyncio.gather(*(critical() for _ in range(4)))
    assert peak == 1
    async with state.lock(name):
        with pytest.raises(LockTimeout):
            async with state.lock(name, wait=0.2):
                pass


async def test_pubsub_reaches_subscribers_only_after_subscribing(state: State) -> None:
    channel = f"chan-{uuid.uuid4()}"
    await state.publish(channel, "before")
    async with state.subscribe(channel) as messages:
        await asyncio.sleep(0.05)
        await state.publish(channel, "one")
        await state.publish(channel, "two")
        received = [await asyncio.wait_for(anext(messages), 5) for _ in range(2)]
    assert received == ["one", "two"]
