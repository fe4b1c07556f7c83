"""SIGTERM of the backend with 20 reply streams open: the streams are told to reconnect and
end, the process exits within 10 s, and a stream opened after the restart brings the text."""

import asyncio
import signal

import pytest

from tests.faults.api import read_stream
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.servers

STREAMS = 20


async def test_sigterm_of_the_backend_with_20_open_reply_streams(fault: FaultStack) -> None:
    services = fault.services
    user = await fault.user()

    # The text worker is frozen, so that every reply is still pending when the backend stops.
    services.freeze("ml-text")
    try:
        ids = [
            (await user.send(f"Поток {i}: что такое энергия?"))["response_id"]
            for i in range(STREAMS)
        ]
        opened: list[str] = []
        streams = [
            asyncio.create_task(read_stream(user, reply_id, within=60, opened=opened))
            for reply_id in ids
        ]
        async with asyncio.timeout(30):
            while len(opened) < STREAMS:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        fault.mark(f"{STREAMS} streams open")

        services.send_signal("backend", signal.SIGTERM)
        took = await services.wait_exited("backend", timeout=30)
        fault.mark(f"backend exited {took and round(took, 1)}s after SIGTERM")
        async with asyncio.timeout(15):
            ended = await asyncio.gather(*streams)
        services.start("backend")
        await services.wait_healthy(timeout=60, workers=False)
        fault.mark("backend back")
    finally:
        services.thaw("ml-text")

    reconnected = await asyncio.gather(
        *(
            read_stream(user, reply_id, until={"dub", "error", "dub_error"}, within=90)
            for reply_id in ids
        )
    )
    fault.mark("reconnected streams ended")
    snap = await fault.settle(user)

    assert took is not None and took <= 10, f"the backend took {took}s to exit after SIGTERM"
    how = [h for _, h in ended]
    assert all(h == "closed" or h.startswith("error") for h in how), how
    told = [any(kind == "reconnect" for kind, _ in events) for events, _ in ended]
    assert all(told), f"{told.count(False)} of {STREAMS} streams ended without `reconnect`"
    for reply_id, (events, how) in zip(ids, reconnected, strict=True):
        kinds = [kind for kind, _ in events]
        assert "text" in kinds, (reply_id, how, kinds)
    replies = [m for m in snap.messages if m["role"] == "avatar"]
    assert len(replies) == len(user.sent) and all(m["status"] == "ready" for m in replies)
