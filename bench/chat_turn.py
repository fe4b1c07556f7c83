"""Latency the orchestration adds to one chat turn.

One turn: HTTP send -> `inference_response` on the bus -> an instant responder publishes
`save_response` -> the backend stores the reply -> the `text` event arrives on the SSE stream;
measured both ways a client can do it: the send, then the reply's stream (two requests), and
the send with `Accept: text/event-stream` (the reply streams in the same response).
The baselines are bare FastAPI endpoints on the same database, with no bus, state or auth: one
makes the writes the issue measured against (two inserts, one update), the other every write a
turn makes, in its four transactions (the send with its outbox row; the relay's stamp; the
answer with its processed-event and outbox rows; the relay's stamp): what is left between it
and a turn is the orchestration proper.
Every run is timed by one client, in a process of its own as a browser or the browser app is,
and the runs take turns in rounds, so that a slower minute of this shared machine slows them
all alike. A streamed send is also timed with a connection already open (a browser has idle
ones to the site; a stream left before its end closes its own).
On the servers stack the broker is librdkafka's mock cluster, which answers a consumer's
waiting fetch only when the fetch's wait is over, never when a message arrives as Kafka does:
each hop then waits up to `fetch_max_wait_ms`. The bench sets it to 1 ms (`--fetch-wait-ms`),
so that the stand-in's wait does not count as Bishop's work; 10 ms is what the tests use.

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


@asynccontextmanager
async def bishop(settings: Settings) -> AsyncIterator[tuple[str, list[str], dict[str, str]]]:
    """Bishop with an instant responder on its bus: the API's address, two chats' message paths
    and a signed-in user's headers."""
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
            paths = []
            for title in ("two requests", "one request"):
                chat = (
                    await client.post(
                        f"/avatars/{avatar['id']}/chat", json={"title": title}, headers=headers
                    )
                ).json()
                paths.append(f"/avatars/{avatar['id']}/chat/{chat['id']}/msgs")
            yield url + "/api/v1", paths, headers
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


async def measure(targets: list[dict[str, Any]], turns: int) -> dict[str, list[float]]:
    """Each target's turn times, as a client in a process of its own sees them: in the
    server's own process, the client's reads waited behind whatever the server did next (the
    relay's pass for the voicing, after the reply's text was already sent)."""
    spec = json.dumps({"targets": targets, "turns": turns})
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.chat_turn", "--client", spec, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the client process failed ({child.returncode})")
    return json.loads(out.decode().splitlines()[-1])


ROUNDS = 10  # the targets take turns in this many rounds, so a slower minute slows them all


async def client_turns(spec: dict[str, Any]) -> dict[str, list[float]]:
    """Turns one after another, the targets in rounds: a bare POST, or a Bishop turn up to the
    reply's `text` event (10 warm-up turns each are not counted)."""
    samples: dict[str, list[float]] = {t["name"]: [] for t in spec["targets"]}
    clients = {t["name"]: httpx.AsyncClient(base_url=t["url"]) for t in spec["targets"]}
    counter = 0

    async def turn(target: dict[str, Any]) -> float:
        nonlocal counter
        counter += 1
        client, path, headers = clients[target["name"]], target["path"], target["headers"]
        start = time.perf_counter()
        body = {"message": f"turn {counter}"}
        if target["how"] == "bare":
            (await client.post(path, json=body)).raise_for_status()
            return time.perf_counter() - start
        if target["how"] == "send with stream":
            streaming = {**headers, "Accept": "text/event-stream"}
            sending = client.stream("POST", path, json=body, headers=streaming)
        else:
            sent = await client.post(path, json=body, headers=headers)
            reply_id = sent.json()["response_id"]
            sending = client.stream("GET", f"{path}/{reply_id}/response/stream", headers=headers)
        async with sending as stream:
            async for line in stream.aiter_lines():
                if line == "event: text":
                    break
        took = time.perf_counter() - start
        if target["warm"]:
            # Leaving a stream before its end closes its connection; a browser still has idle
            # ones to the same site when the user next sends. So has this client, untimed.
            await client.get("/no-such-page")
        return took

    try:
        for target in spec["targets"]:
            for _ in range(10):
                await turn(target)
        for _ in range(ROUNDS):
            for target in spec["targets"]:
                for _ in range(spec["turns"] // ROUNDS):
                    samples[target["name"]].append(await turn(target))
    finally:
        for client in clients.values():
            await client.aclose()
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


def bare_target(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "url": url, "path": "/turn", "headers": {}, "how": "bare"}


def bishop_targets(
    stack: str, url: str, paths: list[str], headers: dict[str, str]
) -> list[dict[str, Any]]:
    runs = [
        ("send, then stream", paths[0], True, ""),
        ("send with stream", paths[1], True, ""),
        ("send with stream", paths[1], False, ", a new connection each turn"),
    ]
    return [
        {"name": f"{stack}: Bishop turn, {how}{note}", "url": url, "path": path}
        | {"headers": headers, "how": how, "warm": warm}
        for how, path, warm, note in runs
    ]


async def stack_rows(
    stack: str, bare_urls: tuple[str, str], settings: Settings, turns: int
) -> list[dict[str, float | str]]:
    """One stack's runs, measured in the same rounds; the ratio is to the bare endpoint that
    makes every write of a turn."""
    async with (
        srv.serve_app(bare_app(bare_urls[0])) as bare,
        srv.serve_app(bare_app(bare_urls[1], every_write=True)) as every,
        bishop(settings) as (url, paths, headers),
    ):
        targets = [
            bare_target(f"{stack}: bare FastAPI, the same writes as the issue's", bare),
            bare_target(f"{stack}: bare FastAPI, every write of a turn", every),
            *bishop_targets(stack, url, paths, headers),
        ]
        samples = await measure(targets, turns)
    rows = [summary(name, times) for name, times in samples.items()]
    every_p50 = float(rows[1]["p50_ms"])
    return [r | {"ratio": float(r["p50_ms"]) / every_p50} for r in rows]


async def main(turns: int, modes: list[str], fetch_wait_ms: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "embedded" in modes:
            settings = stack_settings("embedded", root / "embedded", None)
            bare = (f"sqlite+aiosqlite:///{root}/bare.db", f"sqlite+aiosqlite:///{root}/every.db")
            rows += await stack_rows("embedded", bare, settings, turns)
        if "servers" in modes:
            with srv.kafka() as bootstrap, srv.s3(root) as s3_url:
                urls = ServerUrls(kafka=bootstrap, s3=s3_url, redis=srv.redis_url())
                database_url, name = await srv.create_postgres_database()
                try:
                    settings = stack_settings("servers", root / "servers", urls, database_url)
                    settings.bus_url = settings.bus_url.replace(
                        "fetch_max_wait_ms=10", f"fetch_max_wait_ms={fetch_wait_ms}"
                    )
                    bare = (database_url, database_url)
                    rows += await stack_rows("servers", bare, settings, turns)
                finally:
                    await srv.drop_postgres_database(name)
    print("| run | turns | p50 ms | p95 ms | p50 / every write |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['turns']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
            f"| {r['ratio']:.2f} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--mode", choices=["embedded", "servers", "both"], default="both")
    parser.add_argument("--fetch-wait-ms", type=int, default=1)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the client process's part
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client_turns(json.loads(args.client)))))
        raise SystemExit
    modes = ["embedded", "servers"] if args.mode == "both" else [args.mode]
    asyncio.run(main(args.turns, modes, args.fetch_wait_ms))
