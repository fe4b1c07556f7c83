"""The front door holds under many clients: open reply streams hold no database connection,
and tokens without an expiry are refused."""

import asyncio
import time
import uuid

import httpx
import jwt

from tests import factories
from tests.conftest import Stack

# More than either stack's pool (SQLite 5 + 10 overflow, Postgres 10 + 20).
OPEN_STREAMS = 35


async def test_open_reply_streams_do_not_starve_other_requests(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    reply_ids = [
        (await client.post(msgs, json={"message": f"{n}"}, headers=headers)).json()["response_id"]
        for n in range(OPEN_STREAMS)
    ]
    opened = asyncio.Event()
    count = 0

    async def follow(reply_id: str) -> None:
        nonlocal count
        async with (
            httpx.AsyncClient(base_url=stack.url + "/api/v1", timeout=30) as own,
            own.stream("GET", f"{msgs}/{reply_id}/response/stream", headers=headers) as answer,
        ):
            assert answer.status_code == 200
            count += 1
            if count == OPEN_STREAMS:
                opened.set()
            async for _ in answer.aiter_lines():
                pass

    streams = [asyncio.create_task(follow(r)) for r in reply_ids]
    try:
        async with asyncio.timeout(30):
            await opened.wait()
        started = time.monotonic()
        me = await client.get("/users/me", headers=headers)
        assert me.status_code == 200
        assert time.monotonic() - started < 5  # it used to wait 30 s for a connection
    finally:
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)


async def test_a_token_without_an_expiry_is_refused(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    me = (await client.get("/users/me", headers=headers)).json()
    forever = jwt.encode({"sub": me["id"]}, stack.settings.secret_key, algorithm="HS256")
    answer = await client.get("/users/me", headers={"Authorization": f"Bearer {forever}"})
    assert answer.status_code == 401
    stranger = jwt.encode(
        {"sub": str(uuid.uuid4()), "exp": time.time() + 60},
        stack.settings.secret_key,
        algorithm="HS256",
    )
    assert (
        await client.get("/users/me", headers={"Authorization": f"Bearer {stranger}"})
    ).status_code == 401
