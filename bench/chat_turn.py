"""Latency the orchestration adds to one chat turn.

One turn: HTTP send -> `inference_response` on the bus -> an instant responder publishes
`save_response` -> the backend stores the reply -> the `text` event arrives on the SSE stream;
measured both ways a client can do it: the send, then the reply's stream (two requests), and
the send with `Accept: text/event-stream` (the reply streams in the same response).
The baseline is a bare FastAPI endpoint doing the same database writes (two inserts, one
update) on the same database, timed by the same client, which runs in a process of its own as
a browser or the browser app would (in the server's process its reads waited behind the
server's next work, the relay's pass for the voicing after the text was sent). A second bare
endpoint makes every write a turn makes, in its four transactions (the send with its outbox
row; the relay's stamp; the answer with its processed-event and outbox rows; the relay's
stamp), with none of the reads, hops or streams: what is left between it and a turn is the
orchestration proper.

    uv run python -m bench.chat_turn --turns 200            # embedded and server mode
    uv run python -m bench.chat_turn --turns 200 --mode embedded
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from bishop_backend.db import create_engine, session_factory
from bishop_backend.migrations import upgrade
from bishop_backend.models import (
    Avatar,
    Chat,
    Message,
    MessageRole,
    OutboxEvent,
    ProcessedEvent,
    ReplyStatus,
    User,
)
from bishop_backend.models.common import utcnow
from bishop_backend.settings import Settings
from bishop_contracts.events import Event, InferenceResponse, SaveResponse
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from fastapi import FastAPI

from tests.conftest import ServerUrls, serve, stack_settings
from tests.support import servers as srv


async def orchestrated_turns(settings: Settings, turns: int, one_request: bool) -> list[float]:
    responder = bus_from_url(settings.bus_url, client_id="bench-responder")

    async def answer(event: Event) -> None:
        if isinstance(event, InferenceResponse):
            reply = SaveResponse(message_id=event.message_id, generated_text=event.text)
            await responder.publish(Topic.SAVE_RESPONSE, reply)

    responder.subscribe(f"bench-{uuid.uuid4().hex[:6]}", [Topic.LLM_INFERENCE], answer)
    await responder.start()
    try:
        async with serve(settings) as url, httpx.AsyncClient(base_url=url + "/api/v1") as client:
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            await client.post("/users/signup", json={"email": email, "password": "password1"})
            token = (
                await client.post(
                    "/login/access-token", data={"username": email, "password": "password1"}
                )
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            avatar = (await client.post("/avatars", json={"name": "Bench"}, headers=headers)).json()
            chat = (
                await client.post(
                    f"/avatars/{avatar['id']}/chat", json={"title": "b"}, headers=headers
                )
            ).json()
            msgs = f"/avatars/{avatar['id']}/chat/{chat['id']}/msgs"
            how = "send with stream" if one_request else "send, then stream"
            return await client_process(url + "/api/v1", msgs, headers, turns, how)
    finally:
        await responder.stop()


def bare_app(database_url: str, every_write: bool = False) -> FastAPI:
    """The same writes as a chat turn, with no bus, no state and no auth (`every_write`: the
    outbox and processed-event rows too, in as many transactions as a turn)."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    chat_id = uuid.uuid4()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await upgrade(engine)
        async with sessions() as session:
            user = User(email=f"bare-{chat_id}@example.com", hashed_password="x")
            avatar = Avatar(name="bare", owner_id=user.id)
            for row in (user, avatar, Chat(id=chat_id, title="bare", avatar_id=avatar.id)):
                session.add(row)
                await session.flush()  # no ORM relationships, so insert parents first
            await session.commit()
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    def outbox_row(event: str) -> OutboxEvent:
        return OutboxEvent(
            topic="bench", key=str(chat_id), event_id=uuid.uuid4(), event=event, payload="{}"
        )

    @app.post("/turn")
    async def turn(body: dict[str, str]) -> dict[str, str]:
        if every_write:
            return await every_write_of_a_turn(body["message"])
        async with sessions() as session:
            message = Message(chat_id=chat_id, role=MessageRole.USER, text=body["message"])
            reply = Message(
                chat_id=chat_id,
                role=MessageRole.AVATAR,
                reply_to_id=message.id,
                status=ReplyStatus.PENDING,
            )
            session.add_all([message, reply])
            await session.commit()
            reply.text, reply.status = body["message"], ReplyStatus.READY
            session.add(reply)
            await session.commit()
            return {"response_id": str(reply.id)}

    async def every_write_of_a_turn(text: str) -> dict[str, str]:
        async def stamp(row: OutboxEvent) -> None:
            async with sessions() as session:
                row.sent_at = utcnow()
                session.add(row)
                await session.commit()

        async with sessions() as session:
            message = Message(chat_id=chat_id, role=MessageRole.USER, text=text)
            reply = Message(
                chat_id=chat_id,
                role=MessageRole.AVATAR,
                reply_to_id=message.id,
                status=ReplyStatus.PENDING,
            )
            asked = outbox_row("inference_response")
            session.add_all([message, reply, asked])
            await session.commit()
        await stamp(asked)
        async with sessions() as session:
            reply.text, reply.status = text, ReplyStatus.READY
            voiced = outbox_row("sound_inference")
            session.add_all([reply, ProcessedEvent(event_id=uuid.uuid4(), event="save"), voiced])
            await session.commit()
        await stamp(voiced)
        return {"response_id": str(reply.id)}

    return app


async def bare_turns(database_url: str, turns: int, every_write: bool = False) -> list[float]:
    async with srv.serve_app(bare_app(database_url, every_write)) as url:
        return await client_process(url, "/turn", {}, turns, "bare")


async def client_process(
    url: str, path: str, headers: dict[str, str], turns: int, how: str
) -> list[float]:
    """The turns' times as a client in a process of its own sees them: in the server's own
    process, the client's reads waited behind whatever the server did next (the relay's pass
    for the voicing, after the reply's text was already sent)."""
    spec = json.dumps({"url": url, "path": path, "headers": headers, "turns": turns, "how": how})
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.chat_turn", "--client", spec, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the client process failed ({child.returncode})")
    return json.loads(out.decode().splitlines()[-1])


async def client_turns(spec: dict[str, Any]) -> list[float]:
    """One client's turns, one after another: a bare POST, or a Bishop turn up to the reply's
    `text` event (10 warm-up turns are not counted)."""
    headers, path, how = spec["headers"], spec["path"], spec["how"]
    streaming = {**headers, "Accept": "text/event-stream"}
    samples = []
    async with httpx.AsyncClient(base_url=spec["url"]) as client:
        for n in range(spec["turns"] + 10):
            start = time.perf_counter()
            body = {"message": f"turn {n}"}
            if how == "bare":
                (await client.post(path, json=body)).raise_for_status()
            else:
                if how == "send with stream":
                    sending = client.stream("POST", path, json=body, headers=streaming)
                else:
                    sent = await client.post(path, json=body, headers=headers)
                    reply_id = sent.json()["response_id"]
                    sending = client.stream(
                        "GET", f"{path}/{reply_id}/response/stream", headers=headers
                    )
                async with sending as stream:
                    async for line in stream.aiter_lines():
                        if line == "event: text":
                            break
            if n >= 10:
                samples.append(time.perf_counter() - start)
    return samples


def summary(name: str, samples: list[float]) -> dict[str, float | str]:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return {
        "run": name,
        "turns": len(samples),
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": p95 * 1000,
    }


async def main(turns: int, modes: list[str], fetch_wait_ms: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "embedded" in modes:
            settings = stack_settings("embedded", root / "embedded", None)
            rows.append(
                summary(
                    "embedded: bare FastAPI, same SQLite writes",
                    await bare_turns(f"sqlite+aiosqlite:///{root}/bare.db", turns),
                )
            )
            rows.append(
                summary(
                    "embedded: bare FastAPI, every write of a turn",
                    await bare_turns(f"sqlite+aiosqlite:///{root}/every.db", turns, True),
                )
            )
            for one_request, how in ((False, "send, then stream"), (True, "send with stream")):
                rows.append(
                    summary(
                        f"embedded: Bishop turn, {how} (HTTP -> bus -> SSE)",
                        await orchestrated_turns(settings, turns, one_request),
                    )
                )
        if "servers" in modes:
            with srv.kafka() as bootstrap, srv.s3(root) as s3_url:
                urls = ServerUrls(kafka=bootstrap, s3=s3_url, redis=srv.redis_url())
                database_url, name = await srv.create_postgres_database()
                try:
                    bare = await bare_turns(database_url, turns)
                    rows.append(summary("servers: bare FastAPI, same Postgres writes", bare))
                    every = await bare_turns(database_url, turns, every_write=True)
                    rows.append(summary("servers: bare FastAPI, every write of a turn", every))
                    settings = stack_settings("servers", root / "servers", urls, database_url)
                    settings.bus_url = settings.bus_url.replace(
                        "fetch_max_wait_ms=10", f"fetch_max_wait_ms={fetch_wait_ms}"
                    )
                    for one_request, how in (
                        (False, "send, then stream"),
                        (True, "send with stream"),
                    ):
                        bishop = await orchestrated_turns(settings, turns, one_request)
                        rows.append(
                            summary(f"servers: Bishop turn, {how} (HTTP -> Kafka -> SSE)", bishop)
                        )
                finally:
                    await srv.drop_postgres_database(name)
    print("| run | turns | p50 ms | p95 ms |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['turns']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--mode", choices=["embedded", "servers", "both"], default="both")
    parser.add_argument("--fetch-wait-ms", type=int, default=10)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the client process's part
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client_turns(json.loads(args.client)))))
        raise SystemExit
    modes = ["embedded", "servers"] if args.mode == "both" else [args.mode]
    asyncio.run(main(args.turns, modes, args.fetch_wait_ms))
