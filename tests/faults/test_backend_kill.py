"""The backend SIGKILLed during a burst of 50 sends: every send is answered once the backend is
back (resent with its `Idempotency-Key`), nothing is stored twice, every reply is final.

Besides the sends cut off by the kill (committed or not, nobody knows), a few are sent so that
their answers are surely lost: committed (their keys are in the database), never read, then
the backend dies. Resent after the restart, they are answered as replays."""

import asyncio
import contextlib
import time
import uuid

import pytest

from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.servers

BURST = 50
KILL_AFTER = 15
LOST = 5


async def test_backend_sigkill_during_a_burst_of_sends(fault: FaultStack) -> None:
    services = fault.services
    user = await fault.user()
    checker = fault.checker(user)
    # One reply first: the model is loaded before the burst, as on a server that has run a while.
    warm = await user.send("Привет! Как дела?")
    await user.wait_reply(warm["response_id"], lambda m: m["dub_status"] in {"ready", "failed"})
    fault.mark("warm reply")

    texts = [f"Вопрос {i}: что такое импульс?" for i in range(BURST)]
    keys = [f"burst-{i}-{uuid.uuid4()}" for i in range(BURST)]
    lost = range(BURST - LOST, BURST)  # the last ones: sent unread, just before the kill
    gate = asyncio.Semaphore(10)

    async def send(i: int) -> dict:
        async with gate:
            return await user.send(texts[i], key=keys[i], within=150, pause=0.3)

    tasks = [asyncio.create_task(send(i)) for i in range(BURST) if i not in lost]
    async with asyncio.timeout(60):
        while len(user.sent) < KILL_AFTER + 1:  # +1: the warm-up
            await asyncio.sleep(0.02)
    unread = [await user.send_unread(texts[i], keys[i]) for i in lost]
    async with asyncio.timeout(20):
        while len(await checker.stored_keys([keys[i] for i in lost])) < LOST:
            await asyncio.sleep(0.05)
    services.kill("backend")
    killed_at = time.monotonic()
    fault.mark(f"backend killed after {len(user.sent) - 1} answers and {LOST} unread")
    for writer in unread:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    await asyncio.sleep(1.0)
    services.start("backend")
    await services.wait_healthy(workers=False)
    fault.mark(f"backend back ({time.monotonic() - killed_at:.1f}s after the kill)")

    answers = await asyncio.gather(*tasks)
    sent = dict(zip([i for i in range(BURST) if i not in lost], answers, strict=True))
    replayed_before = user.replayed
    for i in lost:
        sent[i] = await user.send(texts[i], key=keys[i])
    assert user.replayed - replayed_before == LOST, "a committed send was not answered as a replay"
    fault.mark(f"all {BURST} sends answered ({user.replayed} replayed)")
    assert len({s["response_id"] for s in sent.values()}) == BURST

    # A client that lost the answers of the first sends resends them too: the first result
    # comes back, marked as a replay, and nothing new is made.
    replayed_before = user.replayed
    for i in range(0, KILL_AFTER, 3):
        again = await user.send(texts[i], key=keys[i])
        assert again["response_id"] == sent[i]["response_id"]
    assert user.replayed - replayed_before == len(range(0, KILL_AFTER, 3))

    snap = await fault.settle(user)
    replies = [m for m in snap.messages if m["role"] == "avatar"]
    assert len(replies) == len(user.sent) >= BURST + 1
    assert all(m["status"] == "ready" for m in replies), [
        (m["id"], m["status"], m["error"]) for m in replies if m["status"] != "ready"
    ]
