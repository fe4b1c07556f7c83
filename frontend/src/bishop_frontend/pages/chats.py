"""Chats of an avatar and the chat itself: the reply streams in over SSE, then its voice."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bishop_contracts.languages import DEFAULT_LANGUAGE
from fasthtml import common as fh
from starlette.requests import Request
from starlette.responses import StreamingResponse

from bishop_frontend.client import ApiError
from bishop_frontend.components import Errors, Field, IdempotencyKey, Layout, Nav
from bishop_frontend.pages.common import api, backend, relay, user

ar = fh.APIRouter()
PAGE = 100  # messages shown at first; older ones load on demand
ENTER_SENDS = (
    "if(event.key==='Enter'&&!event.shiftKey){event.preventDefault();this.form.requestSubmit();}"
)


def ChatRow(aid: str, chat: dict[str, Any]) -> Any:
    cid = chat["id"]
    return fh.Li(
        fh.Div(
            fh.Div(Nav(f"/avatars/{aid}/chats/{cid}", chat["title"]), cls="grow"),
            fh.Form(
                fh.Input(
                    type="text",
                    name="title",
                    value=chat["title"],
                    aria_label="Chat title",
                    required=True,
                    maxlength=255,
                ),
                fh.Button("Rename", type="submit", cls="secondary"),
                hx_post=f"/avatars/{aid}/chats/{cid}/rename",
                hx_target=f"#chat-{cid}",
                hx_swap="outerHTML",
                cls="row",
            ),
            fh.Button(
                "Delete",
                cls="danger",
                hx_delete=f"/avatars/{aid}/chats/{cid}",
                hx_target=f"#chat-{cid}",
                hx_swap="outerHTML",
                hx_confirm=f"Delete the chat “{chat['title']}”?",
            ),
            cls="row",
        ),
        id=f"chat-{cid}",
    )


@ar("/avatars/{aid}/chats", methods=["get"])
async def chats_page(req: Request, sess, aid: str) -> Any:
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    chats = await api(req, sess, "GET", f"/avatars/{aid}/chat")
    return Layout(
        f"Chats with {avatar['name']}",
        fh.P(Nav(f"/avatars/{aid}", f"← {avatar['name']}")),
        fh.H1(f"Chats with {avatar['name']}"),
        fh.Form(
            fh.Div(
                fh.Div(
                    Field("New chat's title", "title", required=True, maxlength=255), cls="grow"
                ),
                fh.Button("Create chat", type="submit", style="align-self:end"),
                cls="row",
            ),
            hx_post=f"/avatars/{aid}/chats",
            hx_target="#chat-list",
            hx_swap="beforeend",
            hx_on__after_request="if(event.detail.successful) this.reset()",
            cls="card",
        ),
        fh.Ul(*[ChatRow(aid, c) for c in chats], id="chat-list", cls="plain card"),
        user=user(sess),
    )


@ar("/avatars/{aid}/chats", methods=["post"])
async def create_chat(req: Request, sess, aid: str, title: str = "") -> Any:
    chat = await api(
        req, sess, "POST", f"/avatars/{aid}/chat", json={"title": title.strip() or "Chat"}
    )
    fh.add_toast(sess, "Chat created.", "success")
    return ChatRow(aid, chat)


@ar("/avatars/{aid}/chats/{cid}/rename", methods=["post"])
async def rename_chat(req: Request, sess, aid: str, cid: str, title: str = "") -> Any:
    chat = await api(
        req, sess, "PATCH", f"/avatars/{aid}/chat/{cid}", json={"title": title.strip()}
    )
    fh.add_toast(sess, "Chat renamed.", "success")
    return ChatRow(aid, chat)


@ar("/avatars/{aid}/chats/{cid}", methods=["delete"])
async def delete_chat(req: Request, sess, aid: str, cid: str) -> Any:
    await api(req, sess, "DELETE", f"/avatars/{aid}/chat/{cid}")
    fh.add_toast(sess, "Chat deleted.", "success")
    return ""


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


@ar("/avatars/{aid}/chats/{cid}", methods=["get"])
async def chat_page(req: Request, sess, aid: str, cid: str) -> Any:
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    chat = await api(req, sess, "GET", f"/avatars/{aid}/chat/{cid}")
    base = f"/avatars/{aid}/chats/{cid}"
    bubbles = await _page_of_messages(req, sess, aid, cid, None, avatar["language"])
    if not bubbles and avatar["greeting"]:
        bubbles.insert(0, fh.Div(avatar["greeting"], cls="msg avatar"))
    return Layout(
        chat["title"],
        fh.P(Nav(f"/avatars/{aid}/chats", f"← Chats with {avatar['name']}")),
        fh.H1(f"{chat['title']} · {avatar['name']}"),
        fh.Div(*bubbles, id="messages", cls="messages", aria_live="polite"),
        fh.Form(
            fh.Label("Message", fr="message"),
            fh.Textarea(
                name="message",
                id="message",
                rows=2,
                required=True,
                maxlength=8000,
                placeholder="Write a message (Enter sends, Shift+Enter adds a line)",
                onkeydown=ENTER_SENDS,
            ),
            Errors(id="send-errors"),
            IdempotencyKey("send"),
            fh.Div(fh.Button("Send", type="submit"), cls="row", style="margin-top:.5rem"),
            hx_post=f"{base}/send",
            hx_target="#messages",
            hx_swap="beforeend",
            hx_on__after_request="if(event.detail.successful) this.reset()",
            cls="card",
        ),
        user=user(sess),
    )


async def _page_of_messages(
    req: Request, sess, aid: str, cid: str, before: str | None, language: str
) -> list[Any]:
    """The newest page of messages (before `before`), led by a button for the page before."""
    params: dict[str, Any] = {"limit": PAGE + 1}
    if before:
        params["before"] = before
    messages = await api(req, sess, "GET", f"/avatars/{aid}/chat/{cid}/msgs", params=params)
    base = f"/avatars/{aid}/chats/{cid}"
    more, messages = len(messages) > PAGE, messages[-PAGE:]
    bubbles: list[Any] = [
        UserBubble(m) if m["role"] == "user" else ReplyBubble(base, m, language) for m in messages
    ]
    if more:
        bubbles.insert(
            0,
            fh.Button(
                "Load earlier messages",
                cls="secondary",
                hx_get=f"{base}/earlier?before={messages[0]['id']}",
                hx_target="this",
                hx_swap="outerHTML",
                style="align-self:center",
            ),
        )
    return bubbles


@ar("/avatars/{aid}/chats/{cid}/earlier", methods=["get"])
async def earlier(req: Request, sess, aid: str, cid: str, before: str) -> Any:
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    return tuple(await _page_of_messages(req, sess, aid, cid, before, avatar["language"]))


@ar("/avatars/{aid}/chats/{cid}/send", methods=["post"])
async def send(
    req: Request, sess, aid: str, cid: str, message: str = "", idempotency_key: str = ""
) -> Any:
    if not message.strip():
        return ""
    sent = await api(
        req,
        sess,
        "POST",
        f"/avatars/{aid}/chat/{cid}/msgs",
        json={"message": message},
        idempotency_key=idempotency_key,
    )
    base = f"/avatars/{aid}/chats/{cid}"
    pending = {"id": sent["response_id"], "status": "pending", "text": "", "dub_status": "none"}
    fresh_key = IdempotencyKey("send", swap=True)
    return UserBubble(sent["message"]), ReplyBubble(base, pending), fresh_key


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
