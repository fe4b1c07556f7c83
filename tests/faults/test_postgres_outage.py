"""Postgres stopped (immediate shutdown) for 20 s with replies in flight: requests meeting the
outage get 503 naming the database, health says so, and once it is back every reply is final
and nothing is duplicated."""

import asyncio
import time

import pytest

from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.servers

OUTAGE_SECONDS = 20


async def test_postgres_down_for_20_seconds_with_replies_in_flight(fault: FaultStack) -> None:
    services = fault.services
    user = await fault.user()

    before = [await user.send(f"До сбоя {i}: расскажи об энергии") for i in range(10)]
    fault.mark("10 sent")
    fault.postgres.stop()
    down_at = time.monotonic()
    fault.mark("postgres stopped")

    # Sends during the outage: answered 503 (resent with the same key until it is over).
    during = [
        asyncio.create_task(user.send(f"Во время сбоя {i}", within=OUTAGE_SECONDS + 90))
        for i in range(5)
    ]
    await asyncio.sleep(3)
    status, health = await services.health()
    assert status == 503 and "database" in health["down"], health
    assert health["dependencies"]["database"]["status"] == "down", health
    async with user.client() as api:
        r = await api.get(user.msgs, headers=user.headers)
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after"), r.headers
    # What the user is told is checked after recovery, so that a wrong name does not hide how
    # the recovery went.
    named = [r.json()]

    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    fault.postgres.start()
    fault.mark("postgres started")
    await services.wait_healthy(timeout=60, workers=False)
    fault.mark("healthy")
    await asyncio.gather(*during)
    fault.mark("sends of the outage answered")

    assert any(o.status == 503 for o in user.outages), "no send met the outage"
    for outage in user.outages:
        assert outage.status == 503 and outage.retry_after, outage
        named.append(outage.body)
    assert all(s["response_id"] for s in before)
    snap = await fault.settle(user)
    assert len([m for m in snap.messages if m["role"] == "avatar"]) == len(user.sent) >= 15

    wrong = [body for body in named if body.get("dependency") != "database"]
    assert not wrong, f"{len(wrong)} of {len(named)} answers blamed another dependency: {wrong[0]}"
