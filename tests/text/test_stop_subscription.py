"""The text worker reads stops (`llm-cancel`) in a consumer group of its own and hands each to
the engine, even while its replies' consumer is busy generating."""

import asyncio
import uuid
from pathlib import Path

from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_text.settings import TextSettings
from bishop_text.worker import TextWorker


async def test_a_stop_reaches_the_engine_while_a_reply_is_being_generated(tmp_path: Path) -> None:
    bus_url = f"memory://text-{uuid.uuid4().hex[:6]}"
    settings = TextSettings(
        _env_file=None,
        bus_url=bus_url,
        state_url=f"memory://s-{uuid.uuid4().hex[:6]}",
        storage_url=f"file://{tmp_path}/objects",
        cache_dir=tmp_path / "cache",
    )
    worker = TextWorker(settings, group=f"g-{uuid.uuid4().hex[:6]}")
    cancelled: list[uuid.UUID] = []
    generating = asyncio.Event()
    release = asyncio.Event()

    async def busy_reply(event: ev.InferenceResponse) -> None:
        generating.set()
        await release.wait()

    worker.engine.cancel = cancelled.append  # type: ignore[method-assign]
    worker.reply = busy_reply  # type: ignore[method-assign]
    sender = bus_from_url(bus_url, client_id="test")
    await worker.bus.start()
    await sender.start()
    try:
        reply_id, avatar_id = uuid.uuid4(), uuid.uuid4()
        await sender.publish(
            Topic.LLM_INFERENCE, ev.InferenceResponse(message_id=reply_id, text="Привет")
        )
        await asyncio.wait_for(generating.wait(), 10)
        await sender.publish(
            Topic.LLM_CANCEL, ev.ResponseCancel(message_id=reply_id, avatar_id=avatar_id)
        )
        async with asyncio.timeout(10):
            while not cancelled:
                await asyncio.sleep(0.01)
        assert cancelled == [reply_id] and not release.is_set()
    finally:
        release.set()
        await sender.stop()
        await worker.bus.stop()
