"""The S3 server killed for 20 s during uploads and dubs: uploads meeting the outage get 503
naming storage (resent with their `Idempotency-Key` they are stored once), dubs and material
processing wait it out, and afterwards everything is final."""

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.conftest import FaultStack
from tests.sound import media
from tests.text.corpus import lecture

pytestmark = pytest.mark.servers

OUTAGE_SECONDS = 20


async def test_s3_down_for_20_seconds_during_uploads_and_dubs(
    fault: FaultStack, tmp_path: Path
) -> None:
    services = fault.services
    user = await fault.user()
    voice = media.speech_wav(tmp_path / "voice.wav").read_bytes()

    await user.upload([("before.txt", lecture(30, seed=1).encode())])
    sent = [await user.send(f"Вопрос {i}: что такое сила?") for i in range(5)]
    # The first text is ready and its dub under way: the outage begins mid-dubbing.
    await user.wait_reply(sent[0]["response_id"], lambda m: m["status"] != "pending", within=60)
    fault.s3.stop()
    down_at = time.monotonic()
    fault.mark("s3 stopped")

    uploads = [
        asyncio.create_task(
            user.upload([(f"notes-{i}.txt", lecture(20, seed=10 + i).encode())], within=120)
        )
        for i in range(3)
    ]
    uploads.append(
        asyncio.create_task(
            user.upload(
                [
                    ("a.txt", lecture(10, seed=20).encode()),
                    ("b.txt", lecture(10, seed=21).encode()),
                ],
                within=120,
            )
        )
    )
    uploads.append(
        asyncio.create_task(user.upload([("voice.wav", voice)], "voice_synthesis", within=120))
    )
    more = [asyncio.create_task(user.send(f"Во время сбоя {i}", within=120)) for i in range(3)]
    await asyncio.sleep(4)
    status, health = await services.health()
    assert status == 503 and "storage" in health["down"], health

    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    fault.s3.start()
    fault.mark("s3 started")
    await services.wait_healthy(timeout=60, workers=False)
    fault.mark("healthy")
    await asyncio.gather(*uploads, *more)
    fault.mark(f"uploads answered ({len(user.outages)} answers 503)")

    assert user.outages, "no upload met the outage"
    for outage in user.outages:
        assert outage.status == 503 and outage.retry_after, outage
    wrong = [o.body for o in user.outages if o.body.get("dependency") != "storage"]

    snap = await fault.settle(user)
    assert user.uploaded == 7
    replies = [m for m in snap.messages if m["role"] == "avatar"]
    assert len(replies) == len(user.sent) >= 8
    # A reply the demo model left empty cannot be voiced, whatever the storage does.
    not_voiced = [
        (m["id"], m["dub_status"], m["error"])
        for m in replies
        if m["dub_status"] != "ready" and m["text"]
    ]
    assert not not_voiced, f"dubs that did not survive the outage: {not_voiced}"
    assert not wrong, f"{len(wrong)} answers blamed another dependency: {wrong[0]}"
