"""A reply as a stream of Server-Sent Events: deltas, then the final text, then the dub (or,
for a reply the user stopped, `stopped` with the text it keeps).

Handlers of worker events `notify` a per-reply channel in the shared state; a stream subscribes
first and reads what is stored second, so it misses nothing and skips what it already sent (a
stream whose channel was subscribed to before its reply existed has nothing stored to read).
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing
from typing import Any

from bishop_backend.infra import Infra
from bishop_backend.models import Message, ReplyStatus

DELTAS_TTL = 3600.0
FINAL = {"error", "dub", "dub_error", "stopped"}
RECONNECT_MS = 1000
log = logging.getLogger("bishop.replies")


def channel(reply_id: uuid.UUID) -> str:
    return f"reply:{reply_id}"


def deltas_key(reply_id: uuid.UUID) -> str:
    return f"reply:{reply_id}:deltas"


def dub_chunks_key(reply_id: uuid.UUID) -> str:
    return f"reply:{reply_id}:dub-chunks"


def stopped_key(reply_id: uuid.UUID) -> str:
    """Set while a reply is stopped: deltas its generation still sends are dropped unread."""
    return f"reply:{reply_id}:stopped"


async def notify(infra: Infra, reply_id: uuid.UUID, kind: str, **data: Any) -> None:
    await infra.state.publish(channel(reply_id), json.dumps({"type": kind, **data}))


def dub_path(api_prefix: str, avatar_id: uuid.UUID, chat_id: uuid.UUID, reply_id: uuid.UUID) -> str:
    return f"{api_prefix}/avatars/{avatar_id}/chat/{chat_id}/msgs/{reply_id}/response/dub/"


def text_event(text: str, passage_ids: list[str], sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The data of a reply's `text` event: its final text and what it was built on."""
    return {"text": text, "passage_ids": passage_ids, "sources": sources}


# What a user reads when a reply or its dub failed. Workers report causes for their logs
# (exception classes, object keys with user and avatar ids); none of that is shown.
REPLY_FAILED = "The avatar could not write a reply. Retry to ask again."
VERSION_MISSING = (
    "The avatar's trained version could not be loaded. Retry, or train the avatar again."
)
OUT_OF_MEMORY = "The text model ran out of memory. Retry in a moment."
DUB_FAILED = "The voice could not be made. Try voicing it again."
NOTHING_TO_VOICE = "There was no text to voice."
BAD_VOICE_SAMPLE = "The avatar's voice sample could not be read; upload another one."
REPLY_NOT_PROCESSED = "Bishop could not process this reply. Retry to ask again."


def readable_reply_failure(cause: str) -> str:
    """A plain sentence for why a reply's generation failed (the cause stays in the logs)."""
    log.warning("reply failed: %s", cause)
    lowered = cause.lower()
    if "out of memory" in lowered or "outofmemory" in lowered:
        return OUT_OF_MEMORY
    if any(word in lowered for word in ("nosuchkey", "objectnotfound", "not found", "adapter")):
        return VERSION_MISSING
    return REPLY_FAILED


def readable_dub_failure(cause: str) -> str:
    """A plain sentence for why a reply's voicing failed (the cause stays in the logs)."""
    log.warning("dub failed: %s", cause)
    lowered = cause.lower()
    if "text is empty" in lowered:
        return NOTHING_TO_VOICE
    if "sample" in lowered or "audioerror" in lowered:
        return BAD_VOICE_SAMPLE
    return DUB_FAILED


def sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class _Sent:
    """What a stream has sent, so that nothing is sent twice."""

    def __init__(self) -> None:
        self.deltas: set[int] = set()
        self.text = False
        self.chunks: set[int] = set()


async def _catch_up(
    infra: Infra, reply_id: uuid.UUID, dub_url: str, sent: _Sent
) -> tuple[list[str], bool]:
    """The events for what is stored and not sent yet, and whether the stream is over."""
    async with infra.sessions() as session:
        reply = await session.get(Message, reply_id)
    if reply is None:
        return [sse("error", {"reason": "the reply was deleted"})], True
    if reply.status == ReplyStatus.FAILED:
        return [sse("error", {"reason": reply.error or "generation failed"})], True
    if reply.status == ReplyStatus.STOPPED:
        # What the stream sent so far is replaced by what the reply kept.
        return [sse("stopped", {"text": reply.text})], True
    events = []
    if reply.status == ReplyStatus.READY:
        if not sent.text:
            sent.text = True
            events.append(sse("text", text_event(reply.text, reply.passage_ids, reply.sources)))
    else:
        stored = await infra.state.get_fields(deltas_key(reply_id))
        for index in sorted(int(i) for i in stored if int(i) not in sent.deltas):
            sent.deltas.add(index)
            events.append(sse("delta", {"index": index, "text": stored[str(index)]}))
    if reply.dub_status == ReplyStatus.READY:
        return [*events, sse("dub", {"url": dub_url})], True
    if reply.dub_status == ReplyStatus.FAILED:
        return [*events, sse("dub_error", {"reason": reply.error or "voicing failed"})], True
    chunks = await infra.state.get_fields(dub_chunks_key(reply_id))
    for index in sorted(int(i) for i in chunks if int(i) not in sent.chunks):
        sent.chunks.add(index)
        events.append(sse("dub_chunk", {"index": index, "url": f"{dub_url}{index}"}))
    return events, False


async def stream(
    infra: Infra,
    reply_id: uuid.UUID,
    dub_url: str,
    *,
    first: str = "",
    live: AsyncIterator[str] | None = None,
) -> AsyncGenerator[str]:
    """The reply's events, after `first` if given; `live`: its channel, subscribed to before
    the reply was created (and closed by the caller)."""
    if first:
        yield first
    sent = _Sent()
    async with AsyncExitStack() as subscription:
        if live is None:
            live = await subscription.enter_async_context(infra.state.subscribe(channel(reply_id)))
            # Subscribed first, read second: nothing announced in between is missed.
            events, over = await _catch_up(infra, reply_id, dub_url, sent)
            for event in events:
                yield event
            if over:
                return
        async with aclosing(_follow(infra, reply_id, dub_url, live, sent)) as following:
            async for event in following:
                yield event


async def _follow(
    infra: Infra, reply_id: uuid.UUID, dub_url: str, live: AsyncIterator[str], sent: _Sent
) -> AsyncGenerator[str]:
    """The reply's events as they are announced, until its last one or the timeout."""
    settings = infra.settings
    deadline = time.monotonic() + settings.reply_stream_timeout
    # A timeout must not cancel the subscription's iterator (that would end it), so a task
    # moves its messages into a queue, where the server's shutdown is announced too, and
    # the timeouts apply to the queue: a message wakes the stream in one step.
    inbox: asyncio.Queue[str | None] = asyncio.Queue()
    pump = asyncio.create_task(_drain(live, inbox))
    closing = asyncio.create_task(_announce_closing(infra, inbox))
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(min(left, settings.reply_stream_heartbeat)):
                    message = await inbox.get()
            except TimeoutError:
                # Quiet for a heartbeat: what is stored is read again, so a notification
                # lost after its handler committed delays the stream by a heartbeat at
                # most, never until the timeout.
                events, over = await _catch_up(infra, reply_id, dub_url, sent)
                for event in events:
                    yield event
                if over:
                    return
                yield ": keep-alive\n\n"
                continue
            if message is None:
                # The server is going down: the client reconnects to another (or the
                # restarted) one and resumes from what is stored.
                yield f"retry: {RECONNECT_MS}\n"
                yield sse("reconnect", {"reason": "the server is restarting"})
                return
            note = json.loads(message)
            kind = note.pop("type")
            if kind == "delta":
                if sent.text or note["index"] in sent.deltas:
                    continue
                sent.deltas.add(note["index"])
            elif kind == "text":
                if sent.text:
                    continue
                sent.text = True
            elif kind == "dub_chunk":
                if note["index"] in sent.chunks:
                    continue
                sent.chunks.add(note["index"])
                note["url"] = f"{dub_url}{note['index']}"
            elif kind == "dub":
                note = {"url": dub_url}
            yield sse(kind, note)
            if kind in FINAL:
                return
    finally:
        pump.cancel()
        closing.cancel()
    yield sse("timeout", {"reason": "no reply in time; poll the response endpoint"})


async def _drain(live: AsyncIterator[str], inbox: asyncio.Queue[str | None]) -> None:
    async for message in live:
        inbox.put_nowait(message)


async def _announce_closing(infra: Infra, inbox: asyncio.Queue[str | None]) -> None:
    await infra.closing.wait()
    inbox.put_nowait(None)
