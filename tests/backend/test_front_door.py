"""The front door holds under many clients: open reply streams hold no database connection,
and tokens without an expiry are refused."""

import asyncio
import time
import uuid

import httpx
import jwt

from tests import factories
from tests.conftest import Stack, serve, stack_settings

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


async def test_inputs_are_bounded(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    for query in ("skip=-1", "limit=-1", "limit=0", "limit=501", f"skip={2**63}"):
        answer = await client.get(f"/avatars?{query}", headers=headers)
        assert answer.status_code == 422, (query, answer.text)
    assert (await client.get("/avatars?skip=1&limit=500", headers=headers)).status_code == 200

    huge = {"name": "Ann", "description": "x" * 300_000}
    answer = await client.post("/avatars", json=huge, headers=headers)
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 10_000

    answer = await client.post(
        "/avatars",
        content=chunks(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert (await client.get("/avatars", headers=headers)).json() == []


async def test_timestamps_carry_their_timezone(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    avatar = await factories.avatar(client, headers)
    chat = await factories.chat(client, headers, avatar["id"])
    msgs = f"/avatars/{avatar['id']}/chat/{chat['id']}/msgs"
    await client.post(msgs, json={"message": "Который час?"}, headers=headers)
    stamps = [
        chat["created_at"],
        *(m["created_at"] for m in (await client.get(msgs, headers=headers)).json()),
    ]
    stamps.append(
        (await client.get(f"/avatars/{avatar['id']}", headers=headers)).json()["created_at"]
    )
    assert all(s.endswith(("+00:00", "Z")) for s in stamps), stamps


async def test_the_eleventh_failed_login_within_a_minute_is_refused(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    victim = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    signup = {"email": victim, "password": factories.PASSWORD, "full_name": "V"}
    assert (await client.post("/users/signup", json=signup)).status_code == 201
    bystander = await factories.user(client)
    wrong = {"username": victim, "password": "not-the-password"}
    answers = await asyncio.gather(
        *(client.post("/login/access-token", data=wrong) for _ in range(10))
    )
    assert {a.status_code for a in answers} == {400}
    locked = await client.post("/login/access-token", data=wrong)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    # Locked means locked: the right password waits too, in any letter case.
    right = {"username": victim.upper(), "password": factories.PASSWORD}
    assert (await client.post("/login/access-token", data=right)).status_code == 429
    # Other accounts are not affected.
    assert (await client.get("/users/me", headers=bystander)).status_code == 200
    other = await client.post(
        "/login/access-token", data={"username": "nobody@example.com", "password": "x" * 8}
    )
    assert other.status_code == 400


async def test_a_signed_out_token_is_refused(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    email = (await client.get("/users/me", headers=headers)).json()["email"]
    other_session = await factories.login(client, email)
    assert (await client.post("/logout", headers=headers)).status_code == 204
    replayed = await client.get("/users/me", headers=headers)
    assert replayed.status_code == 401 and "signed out" in replayed.json()["detail"]
    assert (await client.post("/logout", headers=headers)).status_code == 401
    # Signing out ends this session only.
    assert (await client.get("/users/me", headers=other_session)).status_code == 200


async def test_sign_in_and_sign_up_are_limited_per_client_address(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = stack_settings("embedded", tmp_path, None).model_copy(
        update={"signup_rate_limit": "3/minute", "login_rate_limit": "4/minute"}
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url + "/api/v1") as api:
        # The browser app names the browser it relays for; uvicorn trusts it from 127.0.0.1.
        def client(address: str) -> dict[str, str]:
            return {"X-Forwarded-For": address}

        emails = [f"u{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(4)]
        signups = [
            await api.post(
                "/users/signup",
                json={"email": e, "password": factories.PASSWORD},
                headers=client("10.0.0.1"),
            )
            for e in emails
        ]
        assert [s.status_code for s in signups] == [201, 201, 201, 429]
        assert int(signups[-1].headers["retry-after"]) > 0
        assert "from here" in signups[-1].json()["detail"]
        elsewhere = await api.post(
            "/users/signup",
            json={"email": emails[3], "password": factories.PASSWORD},
            headers=client("10.0.0.2"),
        )
        assert elsewhere.status_code == 201

        form = {"username": emails[0], "password": factories.PASSWORD}
        logins = [
            await api.post("/login/access-token", data=form, headers=client("10.0.0.3"))
            for _ in range(5)
        ]
        assert [s.status_code for s in logins] == [200, 200, 200, 200, 429]
        other = await api.post("/login/access-token", data=form, headers=client("10.0.0.4"))
        assert other.status_code == 200


async def test_api_answers_are_private_and_inert(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    for answer in (
        await client.get("/users/me", headers=headers),
        await client.get("/avatars/not-an-id", headers=headers),
    ):
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
