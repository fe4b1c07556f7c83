"""ml-text SIGKILLed while it generates replies and trains: no process of the killed worker
survives it (5 s), and once a new worker runs the replies are answered and the run ends
final (failed with a reason, or finished)."""

import asyncio
import time

import pytest

from tests.faults.api import read_stream
from tests.faults.conftest import FaultStack
from tests.faults.services import still_running
from tests.text.corpus import lecture

pytestmark = pytest.mark.servers


async def test_text_worker_sigkill_mid_reply_and_mid_training(fault: FaultStack) -> None:
    services = fault.services
    user = await fault.user()

    await user.upload([("lecture.txt", lecture(120).encode())])
    async with asyncio.timeout(60):
        while [m["status"] for m in await user.materials()] != ["processed"]:
            await asyncio.sleep(0.5)
    async with user.client() as api:
        r = await api.post(f"/avatars/{user.avatar_id}/train/start", headers=user.headers)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    async with asyncio.timeout(120):
        while (await user.training())["run"]["status"] != "training":
            await asyncio.sleep(0.5)
    fault.mark("training")

    # Replies under way: the last one's stream shows a delta (the worker is generating it).
    sent = [await user.send(f"Вопрос {i}: что такое импульс?") for i in range(5)]
    last = sent[-1]["response_id"]
    events, _ = await read_stream(user, last, until={"delta", "text", "error"}, within=90)
    fault.mark(f"reply under way ({events[-1][0] if events else 'nothing'})")

    family = services.descendants("ml-text")
    assert any("spawn_main" in " ".join(p.cmdline()) for p in family), (
        "the training run has no process of its own",
        [p.cmdline() for p in family],
    )
    services.kill("ml-text")
    killed_at = time.monotonic()
    fault.mark(f"ml-text killed with {len(family)} child processes")
    survivors = still_running(family)
    while survivors and time.monotonic() - killed_at < 5:
        await asyncio.sleep(0.1)
        survivors = still_running(family)
    left = [(p.pid, " ".join(p.cmdline())[:120]) for p in survivors]
    # Clean up before asserting, so that a failure here does not leave training running.
    for process in survivors:
        process.kill()

    services.start("ml-text")
    await services.wait_consuming("ml-text")
    await services.wait_healthy(timeout=60)
    fault.mark("ml-text back")
    snap = await fault.settle(user)
    (run,) = snap.runs
    fault.mark(f"run {run['status']}: {run['error']}")
    assert str(run["id"]) == run_id
    assert run["status"] in {"failed", "finished"}, run
    replies = [m for m in snap.messages if m["role"] == "avatar"]
    assert len(replies) == len(user.sent) and all(m["status"] == "ready" for m in replies), replies
    assert not left, f"processes of the killed worker still running 5 s later: {left}"
