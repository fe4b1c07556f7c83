"""A chat's messages: the bubbles, the reply streaming in over SSE, then its voice."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bishop_contracts.languages import DEFAULT_LANGUAGE
from fasthtml import common as fh
from starlette.requests import Request
from starlette.responses import StreamingResponse

from bishop_frontend.client import ApiError
from bishop_frontend.pages.common import api, backend, relay

ar = fh.APIRouter()


def UserBubble(message: dict[str, Any]) -> Any:
    return fh.Div(message["text"], cls="msg user", id=f"msg-{message['id']}")


def ReplyBubble(base: str, reply: dict[str, Any], language: str = DEFAULT_LANGUAGE) -> Any:
    """A reply as it stands; still open parts follow the reply's event stream."""
    rid = reply["id"]
    sources = Sources(base, reply.get("sources") or [], language)
    if reply["status"] == "failed":
        return fh.Div(
            Failure(base, rid, reply.get("error") or "The reply failed."),
            cls="msg avatar",
            id=f"reply-{rid}",
        )
    voice = Voice(base, rid, reply.get("dub_voice")) if reply.get("dub_status") == "ready" else ""
    if reply["status"] == "stopped" or (
        reply["status"] == "ready" and reply.get("dub_status") in ("ready", "failed", "none")
    ):
        return fh.Div(
            fh.Div(reply["text"], cls="text"), sources, voice, cls="msg avatar", id=f"reply-{rid}"
        )
    text = (
        reply["text"] if reply["status"] == "ready" else fh.Span("Avatar is typing…", cls="typing")
    )
    return fh.Div(
        fh.Div(text, sse_swap="text", id=f"text-{rid}", cls="text"),
        fh.Div(sources, sse_swap="sources", id=f"sources-{rid}"),
        fh.Div(sse_swap="voice", id=f"voice-{rid}"),
        fh.Div(sse_swap="problem"),
        hx_ext="sse",
        sse_connect=f"{base}/replies/{rid}/stream",
        sse_close="done",
        cls="msg avatar",
        id=f"reply-{rid}",
    )


def Sources(base: str, sources: list[dict[str, Any]], language: str) -> Any:
    """The passages a reply was built on, folded away under the reply; each names its file,
    which links to the material on the avatar's Train page."""
    if not sources:
        return ""
    # The chat's path lies under its avatar's: /avatars/{aid}/chats/{cid}.
    train = base.rsplit("/chats/", 1)[0] + "/train"
    label = "Источники" if language == "ru" else "Sources"
    return fh.Details(
        fh.Summary(f"{label} ({len(sources)})"),
        fh.Ol(
            *[
                fh.Li(
                    fh.A(s["file_name"], href=f"{train}#material-{s['material_id']}"),
                    # A passage is the user's own upload: text, never markup (FT escapes it).
                    fh.Blockquote(s["text"]),
                )
                for s in sources
            ]
        ),
        cls="sources",
    )


def Voice(base: str, rid: str, note: str | None) -> Any:
    # The MP3 first (a fifth of the WAV or less); a reply voiced before MP3s has none, and
    # the browser then plays the next source, the WAV.
    return fh.Div(
        fh.Audio(
            fh.Source(src=f"{base}/replies/{rid}/dub?format=mp3", type="audio/mpeg"),
            fh.Source(src=f"{base}/replies/{rid}/dub", type="audio/wav"),
            controls=True,
            preload="none",
            aria_label="The reply, voiced",
        ),
        fh.Div(note, cls="muted") if note else "",
    )


def Failure(base: str, rid: str, reason: str) -> Any:
    return fh.Div(
        fh.P(f"No reply: {reason}", cls="error", role="alert"),
        fh.Button(
            "Retry",
            cls="secondary",
            hx_post=f"{base}/replies/{rid}/retry",
            hx_target=f"#reply-{rid}",
            hx_swap="outerHTML",
        ),
    )


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/retry", methods=["post"])
async def retry(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    reply = await api(req, sess, "POST", f"/avatars/{aid}/chat/{cid}/msgs/{rid}/response/retry")
    return ReplyBubble(f"/avatars/{aid}/chats/{cid}", reply)


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/stream", methods=["get"])
async def reply_stream(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    """The backend's reply events, turned into HTML fragments for htmx's SSE extension."""
    base = f"/avatars/{aid}/chats/{cid}"
    path = f"/avatars/{aid}/chat/{cid}/msgs/{rid}/response"
    token = sess.get("token", "")
    upstream = backend(req).stream(f"{path}/stream", token)

    async def voice_note() -> str | None:
        return (await backend(req).call("GET", path, token)).get("dub_voice")

    async def language() -> str:
        return (await backend(req).call("GET", f"/avatars/{aid}", token))["language"]

    return StreamingResponse(
        _fragments(base, rid, upstream, voice_note, language),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _fragments(
    base: str,
    rid: str,
    upstream: AsyncIterator[bytes],
    voice_note: Callable[[], Awaitable[str | None]],
    language: Callable[[], Awaitable[str]] | None = None,
) -> AsyncIterator[str]:
    """`voice_note` and `language` are asked only when needed: a dub, a reply with sources."""
    text = ""
    try:
        async for kind, data in _events(upstream):
            if kind == "delta":
                text += data["text"]
                yield fh.sse_message(fh.Span(text), event="text")
            elif kind in ("text", "stopped"):
                # A stopped reply ends with the text it kept, and is not voiced.
                text = data["text"]
                yield fh.sse_message(fh.Span(text), event="text")
                if sources := data.get("sources"):
                    spoken = await language() if language else DEFAULT_LANGUAGE
                    yield fh.sse_message(Sources(base, sources, spoken), event="sources")
            elif kind == "dub":
                yield fh.sse_message(Voice(base, rid, await voice_note()), event="voice")
            elif kind in ("error", "timeout"):
                yield fh.sse_message(Failure(base, rid, data.get("reason", "")), event="problem")
            elif kind == "dub_error":
                yield fh.sse_message(
                    fh.P(f"No voice: {data.get('reason', '')}", cls="muted"), event="voice"
                )
            if kind in ("dub", "dub_error", "error", "timeout", "stopped"):
                break
    except ApiError as exc:
        yield fh.sse_message(Failure(base, rid, exc.detail), event="problem")
    yield fh.sse_message(fh.Span(), event="done")


async def _events(upstream: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    buffer = ""
    async for chunk in upstream:
        buffer += chunk.decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            kind, data = "message", ""
            for line in block.splitlines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
            if data:
                yield kind, json.loads(data)


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/dub", methods=["get"])
async def dub(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    """The reply's dub: the WAV, or `?format=mp3` its MP3."""
    path = f"/avatars/{aid}/chat/{cid}/msgs/{rid}/response/dub"
    if req.query_params.get("format") == "mp3":
        path += "?format=mp3"
    return await relay(req, sess, path, playable=("audio/",))
