"""A user of the API as a fault test plays one: signs up, makes an avatar and a chat, sends
messages (resending with the same `Idempotency-Key` until an answer comes), uploads, streams,
and at the end checks that everything it caused is final and nothing is duplicated.

Every loop is bounded by a deadline.
"""

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.factories import PASSWORD

RETRYABLE = {502, 503, 504}
FINAL_REPLY = {"ready", "failed"}
FINAL_MATERIAL = {"processed", "failed"}
FINAL_RUN = {"finished", "failed", "stopped"}


@dataclass
class Outage:
    """What a request that met an outage was told."""

    status: int
    retry_after: str | None
    body: Any


@dataclass
class User:
    api: str
    headers: dict[str, str] = field(default_factory=dict)
    avatar_id: str = ""
    chat_id: str = ""
    # Texts whose send was answered (201), by the key it was sent with.
    sent: dict[str, str] = field(default_factory=dict)
    # Reply ids of those sends, by key.
    replies: dict[str, str] = field(default_factory=dict)
    # How many materials each upload that was answered (201) created, by its key.
    uploads: dict[str, int] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)
    replayed: int = 0
    retried: list[str] = field(default_factory=list)

    @property
    def uploaded(self) -> int:
        return sum(self.uploads.values())

    def client(self, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api, timeout=timeout)

    @property
    def msgs(self) -> str:
        return f"/avatars/{self.avatar_id}/chat/{self.chat_id}/msgs"

    # setup

    async def sign_up(self) -> "User":
        email = f"fault-{uuid.uuid4().hex[:10]}@example.com"
        async with self.client() as api:
            r = await api.post(
                "/users/signup", json={"email": email, "password": PASSWORD, "full_name": "Анна"}
            )
            assert r.status_code == 201, r.text
            r = await api.post(
                "/login/access-token", data={"username": email, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await api.post("/avatars", json={"name": "Анна"}, headers=self.headers)
            assert r.status_code == 201, r.text
            self.avatar_id = r.json()["id"]
            r = await api.post(
                f"/avatars/{self.avatar_id}/chat", json={"title": "faults"}, headers=self.headers
            )
            assert r.status_code == 201, r.text
            self.chat_id = r.json()["id"]
        return self

    # requests that ride out an outage

    def _note(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        self.outages.append(Outage(response.status_code, response.headers.get("retry-after"), body))

    async def send(
        self, text: str, *, key: str | None = None, within: float = 120, pause: float = 0.5
    ) -> dict:
        """POST a message; on a dropped connection or a 5xx, send it again with the same key
        until it is answered or `within` seconds pass."""
        key = key or f"send-{uuid.uuid4()}"
        headers = {**self.headers, "Idempotency-Key": key}
        deadline = time.monotonic() + within
        last: object = None
        async with self.client() as api:
            while time.monotonic() < deadline:
                try:
                    r = await api.post(self.msgs, json={"message": text}, headers=headers)
                except httpx.TransportError as exc:
                    last = exc
                else:
                    if r.status_code == 201:
                        body = r.json()
                        self.replayed += r.headers.get("idempotent-replayed") == "true"
                        assert key not in self.sent or self.replies[key] == body["response_id"], (
                            f"key {key} answered with two different replies"
                        )
                        self.sent[key] = text
                        self.replies[key] = body["response_id"]
                        return body
                    if r.status_code not in RETRYABLE:
                        raise AssertionError(f"send {text!r}: {r.status_code} {r.text}")
                    self._note(r)
                    last = r
                await asyncio.sleep(pause)
        raise TimeoutError(f"send {text!r} got no answer in {within}s: {last!r}")

    async def send_unread(self, text: str, key: str) -> asyncio.StreamWriter:
        """POST a message over a raw connection and never read the answer: what a client whose
        answer is lost has done. Close the returned writer when done."""
        url = httpx.URL(self.api + self.msgs)
        body = json.dumps({"message": text}).encode()
        _, writer = await asyncio.open_connection(url.host, url.port)
        head = (
            f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: {self.headers['Authorization']}\r\nIdempotency-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        return writer

    async def upload(
        self,
        files: list[tuple[str, bytes]],
        material_type: str = "basic",
        *,
        key: str | None = None,
        within: float = 120,
    ) -> list[dict]:
        """Upload with an `Idempotency-Key`, resent like `send`."""
        key = key or f"upload-{uuid.uuid4()}"
        headers = {**self.headers, "Idempotency-Key": key}
        deadline = time.monotonic() + within
        last: object = None
        async with self.client(timeout=60) as api:
            while time.monotonic() < deadline:
                try:
                    r = await api.post(
                        f"/avatars/{self.avatar_id}/train/",
                        data={"type": material_type},
                        files=[("file", (name, body)) for name, body in files],
                        headers=headers,
                    )
                except httpx.TransportError as exc:
                    last = exc
                else:
                    if r.status_code == 201:
                        self.replayed += r.headers.get("idempotent-replayed") == "true"
                        self.uploads[key] = len(r.json())
                        return r.json()
                    if r.status_code not in RETRYABLE:
                        raise AssertionError(f"upload: {r.status_code} {r.text}")
                    self._note(r)
                    last = r
                await asyncio.sleep(0.5)
        raise TimeoutError(f"upload got no answer in {within}s: {last!r}")

    async def get(self, path: str, *, within: float = 60) -> Any:
        """GET JSON, waiting out dropped connections and 5xx."""
        deadline = time.monotonic() + within
        last: object = None
        async with self.client() as api:
            while time.monotonic() < deadline:
                try:
                    r = await api.get(path, headers=self.headers)
                except httpx.TransportError as exc:
                    last = exc
                else:
                    if r.status_code == 200:
                        return r.json()
                    if r.status_code not in RETRYABLE:
                        raise AssertionError(f"GET {path}: {r.status_code} {r.text}")
                    last = r
                await asyncio.sleep(0.5)
        raise TimeoutError(f"GET {path}: no answer in {within}s: {last!r}")

    async def messages(self) -> list[dict]:
        return await self.get(self.msgs)

    async def reply(self, reply_id: str) -> dict:
        """The reply as the chat lists it (the response endpoint 404s while pending)."""
        for m in await self.messages():
            if m["id"] == reply_id:
                return m
        raise AssertionError(f"reply {reply_id} is not in the chat")

    async def wait_reply(self, reply_id: str, check: Any, *, within: float = 60) -> dict:
        deadline = time.monotonic() + within
        reply: dict = {}
        while time.monotonic() < deadline:
            reply = await self.reply(reply_id)
            if check(reply):
                return reply
            await asyncio.sleep(0.5)
        raise TimeoutError(f"reply {reply_id} not as expected in {within}s: {reply}")

    async def training(self, *, within: float = 60) -> dict:
        return await self.get(f"/avatars/{self.avatar_id}/train/status", within=within)

    async def materials(self) -> list[dict]:
        return await self.get(f"/avatars/{self.avatar_id}/train/materials")

    async def until_ready(self, reply_id: str, deadline: float, attempts: int = 4) -> dict:
        """Wait for a retried reply to be `ready`. The untrained demo model now and then says
        nothing readable, which fails the reply on purpose ("no readable text"); such a
        failure is retried again, a bounded number of times, and any other one fails."""
        for _ in range(attempts):
            left = max(deadline - time.monotonic(), 1.0)
            reply = await self.wait_reply(
                reply_id, lambda m: m["status"] in FINAL_REPLY, within=left
            )
            if reply["status"] == "ready":
                return reply
            assert "no readable text" in (reply["error"] or ""), f"retried {reply_id}: {reply}"
            assert (await self.retry(reply_id))["status"] == "pending"
        raise AssertionError(f"reply {reply_id} had no readable text {attempts} times")

    async def retry(self, reply_id: str) -> dict:
        async with self.client() as api:
            r = await api.post(f"{self.msgs}/{reply_id}/response/retry", headers=self.headers)
            assert r.status_code == 200, f"retry of {reply_id}: {r.status_code} {r.text}"
            return r.json()


async def read_stream(
    user: User,
    msg_id: str,
    *,
    until: set[str] | None = None,
    within: float = 90,
    opened: list[str] | None = None,
) -> tuple[list[tuple[str, Any]], str]:
    """The SSE events of a reply's stream: (events, how it ended: "closed", "until", "error:…").
    Bounded by `within`; stops early on an event kind in `until`; `opened` gets `msg_id` once
    the stream is answered."""
    events: list[tuple[str, Any]] = []
    ended = "timeout"
    try:
        async with (
            asyncio.timeout(within),
            user.client(timeout=httpx.Timeout(10, read=within)) as api,
            api.stream("GET", f"{user.msgs}/{msg_id}/response/stream", headers=user.headers) as r,
        ):
            assert r.status_code == 200, await r.aread()
            if opened is not None:
                opened.append(msg_id)
            kind, data = "message", ""
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    events.append((kind, json.loads(data)))
                    if until and kind in until:
                        return events, "until"
                    kind, data = "message", ""
            ended = "closed"
    except TimeoutError:
        ended = "timeout"
    except (httpx.TransportError, httpx.StreamError) as exc:
        ended = f"error:{type(exc).__name__}"
    return events, ended


@dataclass
class Snapshot:
    messages: list[dict]
    materials: list[dict]
    runs: list[dict]
    problems: list[str]


class Checker:
    """`final_state`: every reply, dub, material and run of the user ends final, with a reason
    where it failed, and nothing is duplicated. Runs are read from the database (the API shows
    only the current one); everything else through the API."""

    def __init__(self, user: User, database_url: str) -> None:
        self.user = user
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def stored_keys(self, keys: list[str]) -> set[str]:
        """Which of `keys` the backend has committed a result for."""
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT key FROM idempotency_key WHERE key = ANY($1::text[])", keys
            )
        finally:
            await conn.close()
        return {r["key"] for r in rows}

    async def runs(self) -> list[dict]:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT id, status, error FROM trainingrun WHERE avatar_id = $1",
                uuid.UUID(self.user.avatar_id),
            )
        finally:
            await conn.close()
        return [dict(r) for r in rows]

    async def snapshot(self) -> Snapshot:
        messages = await self.user.messages()
        materials = await self.user.materials()
        runs = await self.runs()
        problems: list[str] = []
        for m in messages:
            if m["role"] != "avatar":
                continue
            if m["status"] not in FINAL_REPLY:
                problems.append(f"reply {m['id']} is {m['status']}")
            elif m["status"] == "failed" and not m["error"]:
                problems.append(f"reply {m['id']} failed without a reason")
            if m["dub_status"] == "pending" or (
                m["status"] == "ready" and m["dub_status"] == "none"
            ):
                problems.append(f"dub of {m['id']} is {m['dub_status']}")
            elif m["dub_status"] == "failed" and not m["error"]:
                problems.append(f"dub of {m['id']} failed without a reason")
        for m in materials:
            if m["status"] not in FINAL_MATERIAL:
                problems.append(f"material {m['id']} ({m['filename']}) is {m['status']}")
            elif m["status"] == "failed" and not m["status_detail"]:
                problems.append(f"material {m['id']} failed without a reason")
        for r in runs:
            if r["status"] not in FINAL_RUN:
                problems.append(f"run {r['id']} is {r['status']}")
            elif r["status"] == "failed" and not r["error"]:
                problems.append(f"run {r['id']} failed without a reason")
        return Snapshot(messages, materials, runs, problems)

    def duplicates(self, snap: Snapshot) -> list[str]:
        found: list[str] = []
        users = [m for m in snap.messages if m["role"] == "user"]
        replies = [m for m in snap.messages if m["role"] == "avatar"]
        texts = Counter(m["text"] for m in users)
        found += [f"message {t!r} stored {n} times" for t, n in texts.items() if n > 1]
        for text in set(self.user.sent.values()) - set(texts):
            found.append(f"message {text!r} was answered 201 but is not stored")
        for text in set(texts) - set(self.user.sent.values()):
            found.append(f"message {text!r} is stored but was never answered 201")
        answers = Counter(m["reply_to_id"] for m in replies)
        for m in users:
            if answers[m["id"]] != 1:
                found.append(f"message {m['text']!r} has {answers[m['id']]} replies")
        ids = {m["id"] for m in users}
        found += [
            f"reply {m['id']} answers no message" for m in replies if m["reply_to_id"] not in ids
        ]
        for key, reply_id in self.user.replies.items():
            if not any(m["id"] == reply_id for m in replies):
                found.append(f"reply {reply_id} (key {key}) is missing")
        if len(snap.materials) != self.user.uploaded:
            found.append(f"{len(snap.materials)} materials stored, {self.user.uploaded} uploaded")
        return found

    async def final(self, *, within: float = 60) -> Snapshot:
        """Poll until everything is final (at most `within` s); then check for duplicates."""
        deadline = time.monotonic() + within
        snap = await self.snapshot()
        while snap.problems and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            snap = await self.snapshot()
        assert not snap.problems, f"not final {within}s after recovery: {snap.problems[:10]}"
        duplicated = self.duplicates(snap)
        assert not duplicated, f"duplicated or lost: {duplicated[:10]}"
        return snap

    async def retry_failed(self, snap: Snapshot, *, within: float = 60) -> list[str]:
        """Retry every failed reply; each must end `ready`. Returns their ids."""
        failed = [
            m["id"] for m in snap.messages if m["role"] == "avatar" and m["status"] == "failed"
        ]
        for reply_id in failed:
            retried = await self.user.retry(reply_id)
            assert retried["status"] == "pending", retried
        deadline = time.monotonic() + within
        for reply_id in failed:
            await self.user.until_ready(reply_id, deadline)
        self.user.retried += failed
        return failed
