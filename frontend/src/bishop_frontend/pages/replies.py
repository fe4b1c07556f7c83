"""A chat's messages: the bubbles, the reply streaming in over SSE, then its voice."""

import codecs
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

from bishop_contracts.languages import DEFAULT_LANGUAGE
from fastcore.xml import FT, ft, voids
from fasthtml import common as fh
from fasthtml.components import fh_cfg
from markdown_it import MarkdownIt
from starlette.requests import Request
from starlette.responses import HTMLResponse, StreamingResponse

from bishop_frontend.client import ApiError
from bishop_frontend.components import IdempotencyKey
from bishop_frontend.pages.common import api, backend, relay


# The bubbles are most of a chat page (a few dozen elements each, dozens of messages): they are
# built with fastcore's `ft` and FastHTML's attribute rules, the same markup as `fh.Div` and
# the rest without their per-call defaults (auto ids and names), at about three times the speed.
def _tag(name: str) -> Callable[..., FT]:
    return partial(ft, name, void_=name in voids, attrmap=fh_cfg.attrmap, valmap=fh_cfg.valmap)


_a = _tag("a")
_audio = _tag("audio")
_blockquote = _tag("blockquote")
_button = _tag("button")
_details = _tag("details")
_div = _tag("div")
_img = _tag("img")
_li = _tag("li")
_ol = _tag("ol")
_p = _tag("p")
_source = _tag("source")
_span = _tag("span")
_summary = _tag("summary")
_template = _tag("template")
_textarea = _tag("textarea")
_time = _tag("time")

ar = fh.APIRouter()


@ar("/avatars/{aid}/chats/{cid}/send", methods=["post"])
async def send(
    req: Request, sess, aid: str, cid: str, message: str = "", idempotency_key: str = ""
) -> Any:
    """Send a message: its turn, with the reply it waits for, goes to the end of the chat."""
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
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    base = f"/avatars/{aid}/chats/{cid}"
    fresh_key = IdempotencyKey("send", swap=True)
    return Turn(base, sent["message"], [_pending(sent)], avatar), fresh_key


def _pending(sent: dict[str, Any]) -> dict[str, Any]:
    """The reply a message just sent is waiting for, as the messages list would show it."""
    return {
        "id": sent["response_id"],
        "reply_to_id": sent["message"]["id"],
        "status": "pending",
        "text": "",
        "dub_status": "none",
    }


# Markdown as CommonMark with raw HTML off: `<script>` in a reply shows as the text it is.
# Images are off too (a reply must not make the browser fetch an address a model wrote);
# links keep markdown-it's own check, which refuses `javascript:`, `vbscript:` and `data:`.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable("image")


def MarkdownText(text: str) -> Any:
    """A reply's text, rendered from Markdown with no raw HTML."""
    return _div(fh.NotStr(_MARKDOWN.render(text)), cls="md")


def Stamp(created_at: str | None) -> Any:
    """When a message was written; the page's script shows it in the reader's own time."""
    if not created_at:
        return ""
    moment = datetime.fromisoformat(created_at)
    return _time(moment.strftime("%H:%M"), datetime=moment.isoformat(), cls="stamp")


def Portrait(avatar: dict[str, Any]) -> Any:
    """The avatar's portrait beside its replies, or its initials until it has one."""
    if avatar.get("has_portrait") and avatar.get("id"):
        return _img(src=f"/avatars/{avatar['id']}/portrait", alt="", cls="portrait")
    initials = "".join(word[0] for word in avatar.get("name", "").split()[:2]).upper() or "?"
    return _span(initials, cls="portrait initials", aria_hidden="true")


def typing_note(avatar: dict[str, Any]) -> str:
    """ "Name is typing…", in the avatar's own language."""
    if avatar.get("language") == "ru":
        return f"{avatar.get('name') or 'Аватар'} печатает…"
    return f"{avatar.get('name') or 'Avatar'} is typing…"


def Act(label: str, cls: str, **kwargs: Any) -> Any:
    """A small action button under a message."""
    return _button(label, type="button", cls=f"act {cls}", **kwargs)


def UserBubble(base: str, message: dict[str, Any]) -> Any:
    """A user's message, with copy, edit and resend, and delete."""
    mid, text = message["id"], message["text"]
    return _div(
        _div(text, cls="text"),  # the user's own words, shown as written
        _div(
            Stamp(message.get("created_at")),
            Act("Copy", "copy", data_raw=text, title="Copy the message"),
            # The editor is made when asked for (`EditorTemplate`): a chat page has dozens of
            # messages, and a form each made it slow to build.
            Act(
                "Edit",
                "edit-open",
                data_edit=f"{base}/msgs/{mid}/edit",
                title="Edit and send again",
            ),
            Act(
                "Delete",
                "delete",
                hx_delete=f"{base}/msgs/{mid}",
                hx_target=f"#turn-{mid}",
                hx_swap="outerHTML",
                hx_confirm="Delete this message and its replies?",
            ),
            cls="actions",
        ),
        cls="msg user",
        id=f"msg-{mid}",
    )


def EditorTemplate() -> Any:
    """The form a message's Edit opens in it (replies.js fills in the message and where to send)."""
    return _template(
        fh.Form(
            _textarea(
                name="message", rows=3, required=True, maxlength=8000, aria_label="Edit message"
            ),
            _div(
                _button("Send", type="submit"),
                _button("Cancel", type="button", cls="secondary edit-cancel"),
                cls="row",
            ),
            hx_swap="outerHTML",
            hx_confirm="Send the edited message? The messages after it will be deleted.",
            cls="edit-form",
        ),
        id="edit-form-template",
    )


def Turn(
    base: str, message: dict[str, Any], replies: list[dict[str, Any]], avatar: dict[str, Any]
) -> Any:
    """A user's message and the avatar's replies to it: alternatives, the newest shown."""
    mid = message["id"]
    return _div(
        UserBubble(base, message),
        _div(
            *[ReplyBubble(base, r, avatar) for r in replies], cls="alternatives", id=f"alts-{mid}"
        ),
        cls="turn",
        id=f"turn-{mid}",
    )


def ReplyActions(base: str, reply: dict[str, Any]) -> Any:
    """Copy, another reply (an alternative), delete, and the pager between alternatives."""
    rid = reply["id"]
    regenerate = (
        Act(
            "Regenerate",
            "regenerate",
            hx_post=f"{base}/replies/{rid}/regenerate",
            hx_target="closest .alternatives",
            hx_swap="beforeend",
            title="Ask for another reply",
        )
        if reply.get("reply_to_id")  # a greeting answers nothing
        else ""
    )
    return _div(
        _span(
            Act("‹", "alt-prev", aria_label="Previous reply"),
            _span(cls="alt-count"),
            Act("›", "alt-next", aria_label="Next reply"),
            cls="pager",
            hidden=True,
        ),
        Act("Copy", "copy", data_raw=reply.get("text", ""), title="Copy the reply")
        if reply.get("text")
        else "",
        regenerate,
        Act(
            "Delete",
            "delete",
            hx_delete=f"{base}/msgs/{rid}",
            hx_target=f"#reply-{rid}",
            hx_swap="outerHTML",
            hx_confirm="Delete this reply?",
        ),
        cls="actions",
    )


def StopButton(base: str, rid: str) -> Any:
    """Stop a reply while it is written; it keeps what it has so far."""
    return _div(
        Act(
            "Stop",
            "stop",
            hx_post=f"{base}/replies/{rid}/stop",
            hx_target=f"#reply-{rid}",
            hx_swap="outerHTML",
        ),
        cls="actions",
    )


_AVATAR = {"name": "Avatar", "language": DEFAULT_LANGUAGE}


def ReplyBubble(base: str, reply: dict[str, Any], avatar: dict[str, Any] | None = None) -> Any:
    """A reply as it stands, with the avatar's portrait and name; still open parts follow the
    reply's event stream."""
    avatar = avatar or _AVATAR
    return _div(
        Portrait(avatar),
        _div(
            _div(
                _span(avatar.get("name", ""), cls="who"),
                Stamp(reply.get("created_at")),
                cls="meta",
            ),
            _ReplyBody(base, reply, avatar),
            cls="body",
        ),
        cls=f"msg avatar {reply['status']}",
        id=f"reply-{reply['id']}",
    )


def _ReplyBody(base: str, reply: dict[str, Any], avatar: dict[str, Any]) -> Any:
    rid, status, dub = reply["id"], reply["status"], reply.get("dub_status")
    language = avatar.get("language", DEFAULT_LANGUAGE)
    sources = Sources(base, reply.get("sources") or [], language)
    if status == "failed":
        reason = reply.get("error") or "the reply failed."
        return _div(Failure(base, rid, reason), ReplyActions(base, reply))
    if status == "stopped" or (status == "ready" and dub in ("ready", "failed", "none")):
        return _div(
            _div(MarkdownText(reply["text"]), cls="text"),
            _p("Stopped", cls="muted stopped") if status == "stopped" else "",
            sources,
            _Voiced(base, reply),
            ReplyActions(base, reply),
        )
    if status == "ready":
        text, actions = MarkdownText(reply["text"]), ReplyActions(base, reply)
    else:
        text, actions = _span(typing_note(avatar), cls="typing"), StopButton(base, rid)
    return _div(
        _div(text, sse_swap="text", id=f"text-{rid}", cls="text"),
        _div(sources, sse_swap="sources", id=f"sources-{rid}"),
        _div(sse_swap="voice", id=f"voice-{rid}"),
        _div(sse_swap="problem"),
        _div(actions, sse_swap="actions", id=f"actions-{rid}"),
        # The reply settled: the whole bubble is drawn again, as a reload would draw it.
        _div(sse_swap="settled", hx_target=f"#reply-{rid}", hx_swap="outerHTML", hidden=True),
        hx_ext="sse",
        sse_connect=f"{base}/replies/{rid}/stream",
        sse_close="done",
    )


def _Voiced(base: str, reply: dict[str, Any]) -> Any:
    """The dub of a settled reply: its player, or why there is none and a way to try again."""
    rid = reply["id"]
    if reply.get("dub_status") == "ready":
        return Voice(base, rid, reply.get("dub_voice"))
    if reply.get("dub_status") == "failed":
        return VoiceFailure(base, rid, reply.get("error") or "the voice could not be made.")
    return ""


def VoiceFailure(base: str, rid: str, reason: str) -> Any:
    """Why a reply has no voice, and a button to voice it again."""
    return _div(
        _p(f"No voice: {reason}", cls="muted no-voice"),
        Act(
            "Voice again",
            "voice-again",
            hx_post=f"{base}/replies/{rid}/voice",
            hx_target=f"#reply-{rid}",
            hx_swap="outerHTML",
        ),
    )


def Bubbles(base: str, messages: list[dict[str, Any]], avatar: dict[str, Any]) -> list[Any]:
    """A page of a chat's messages, oldest first, as the chat shows them: each user message
    with its replies; a greeting, or a reply whose message is on an earlier page, alone."""
    turns: dict[str, list[dict[str, Any]]] = {}
    order: list[tuple[dict[str, Any], list[dict[str, Any]] | None]] = []
    for m in messages:
        if m["role"] == "user":
            turns[m["id"]] = []
            order.append((m, turns[m["id"]]))
        elif m.get("reply_to_id") in turns:
            turns[m["reply_to_id"]].append(m)
        else:
            order.append((m, None))
    return [
        Turn(base, m, replies, avatar) if replies is not None else ReplyBubble(base, m, avatar)
        for m, replies in order
    ]


def Sources(base: str, sources: list[dict[str, Any]], language: str) -> Any:
    """The passages a reply was built on, folded away under the reply; each names its file,
    which links to the material on the avatar's Train page."""
    if not sources:
        return ""
    # The chat's path lies under its avatar's: /avatars/{aid}/chats/{cid}.
    train = base.rsplit("/chats/", 1)[0] + "/train"
    label = "Источники" if language == "ru" else "Sources"
    return _details(
        _summary(f"{label} ({len(sources)})"),
        _ol(
            *[
                _li(
                    _a(s["file_name"], href=f"{train}#material-{s['material_id']}"),
                    # A passage is the user's own upload: text, never markup (FT escapes it).
                    _blockquote(s["text"]),
                )
                for s in sources
            ]
        ),
        cls="sources",
    )


def Voice(base: str, rid: str, note: str | None) -> Any:
    # The MP3 first (a fifth of the WAV or less); a reply voiced before MP3s has none, and
    # the browser then plays the next source, the WAV.
    return _div(
        _audio(
            _source(src=f"{base}/replies/{rid}/dub?format=mp3", type="audio/mpeg"),
            _source(src=f"{base}/replies/{rid}/dub", type="audio/wav"),
            controls=True,
            preload="none",
            aria_label="The reply, voiced",
        ),
        _div(note, cls="muted") if note else "",
    )


def Failure(base: str, rid: str, reason: str) -> Any:
    """Why a reply failed, in words, and a button to ask again."""
    return _div(
        _p(f"No reply: {reason}", cls="error", role="alert"),
        _button(
            "Retry",
            cls="secondary",
            hx_post=f"{base}/replies/{rid}/retry",
            hx_target=f"#reply-{rid}",
            hx_swap="outerHTML",
        ),
        cls="failure",
    )


def _refused(exc: ApiError) -> HTMLResponse:
    """The backend said no (the reply moved on meanwhile): the page stays, a toast says why."""
    toast = _div(fh.Toast(exc.detail, "error"), id="fh-toast-container", hx_swap_oob="beforeend")
    return HTMLResponse(fh.to_xml(toast), headers={"HX-Reswap": "none"})


async def _reply_action(
    req: Request, sess, aid: str, cid: str, method: str, path: str, **kwargs: Any
) -> tuple[Any, dict[str, Any]] | HTMLResponse:
    """Call a message action of the backend; with the avatar, or the refusal to show."""
    try:
        answer = await api(req, sess, method, f"/avatars/{aid}/chat/{cid}/msgs/{path}", **kwargs)
    except ApiError as exc:
        if exc.status in (409, 422):
            return _refused(exc)
        raise
    return answer, await api(req, sess, "GET", f"/avatars/{aid}")


async def _redrawn(req: Request, sess, aid: str, cid: str, action: str) -> Any:
    """A reply action of the backend, answered with the reply's bubble as it now stands."""
    done = await _reply_action(req, sess, aid, cid, "POST", action)
    if isinstance(done, HTMLResponse):
        return done
    return ReplyBubble(f"/avatars/{aid}/chats/{cid}", *done)


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/retry", methods=["post"])
async def retry(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    """Ask again for a reply that failed or was stopped."""
    return await _redrawn(req, sess, aid, cid, f"{rid}/response/retry")


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/stop", methods=["post"])
async def stop(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    """Stop a reply while it streams."""
    return await _redrawn(req, sess, aid, cid, f"{rid}/response/stop")


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/regenerate", methods=["post"])
async def regenerate(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    """Another reply to the same message: a new alternative, added after the others."""
    return await _redrawn(req, sess, aid, cid, f"{rid}/response/regenerate")


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/voice", methods=["post"])
async def voice_again(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    """Voice a reply again whose dub failed."""
    return await _redrawn(req, sess, aid, cid, f"{rid}/response/dub/retry")


@ar("/avatars/{aid}/chats/{cid}/msgs/{mid}/edit", methods=["post"])
async def edit(req: Request, sess, aid: str, cid: str, mid: str, message: str = "") -> Any:
    """Edit and resend a message: its turn is drawn again with the reply it now waits for."""
    if not message.strip():
        return _refused(ApiError(422, "The message is empty."))
    done = await _reply_action(req, sess, aid, cid, "PUT", mid, json={"message": message})
    if isinstance(done, HTMLResponse):
        return done
    sent, avatar = done
    return Turn(f"/avatars/{aid}/chats/{cid}", sent["message"], [_pending(sent)], avatar)


@ar("/avatars/{aid}/chats/{cid}/msgs/{mid}", methods=["delete"])
async def delete(req: Request, sess, aid: str, cid: str, mid: str) -> Any:
    """Delete a message with its replies, or one reply; the page drops its bubble."""
    try:
        await api(req, sess, "DELETE", f"/avatars/{aid}/chat/{cid}/msgs/{mid}")
    except ApiError as exc:
        if exc.status == 409:
            return _refused(exc)
        if exc.status != 404:  # gone already (another tab): the page catches up
            raise
    return ""


@ar("/avatars/{aid}/chats/{cid}/replies/{rid}/stream", methods=["get"])
async def reply_stream(req: Request, sess, aid: str, cid: str, rid: str) -> Any:
    """The backend's reply events, turned into HTML fragments for htmx's SSE extension."""
    base = f"/avatars/{aid}/chats/{cid}"
    path = f"/avatars/{aid}/chat/{cid}/msgs/{rid}/response"
    token = sess.get("token", "")
    upstream = backend(req).stream(f"{path}/stream", token)
    known: dict[str, Any] = {}

    async def voice_note() -> str | None:
        return (await backend(req).call("GET", path, token)).get("dub_voice")

    async def avatar() -> dict[str, Any]:
        if "avatar" not in known:
            known["avatar"] = await backend(req).call("GET", f"/avatars/{aid}", token)
        return known["avatar"]

    async def language() -> str:
        return (await avatar())["language"]

    async def settled() -> Any:
        return ReplyBubble(base, await backend(req).call("GET", path, token), await avatar())

    return StreamingResponse(
        _fragments(base, rid, upstream, voice_note, language, settled),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# What ends a reply's stream; all but a timeout (the reply may still come) settle the bubble.
_FINAL = ("dub", "dub_error", "error", "timeout", "stopped")


async def _fragments(
    base: str,
    rid: str,
    upstream: AsyncIterator[bytes],
    voice_note: Callable[[], Awaitable[str | None]],
    language: Callable[[], Awaitable[str]] | None = None,
    settled: Callable[[], Awaitable[Any]] | None = None,
) -> AsyncIterator[str]:
    """`voice_note` and `language` are asked only when needed: a dub, a reply with sources;
    `settled`, the bubble as it is drawn once the reply has settled, at the end."""
    text = ""
    try:
        async for kind, data in _events(upstream):
            if kind == "delta":
                # Deltas as plain text: half a Markdown construct would flicker as it closes.
                text += data["text"]
                yield fh.sse_message(_span(text), event="text")
            elif kind in ("text", "stopped"):
                # A stopped reply ends with the text it kept, and is not voiced.
                text = data["text"]
                yield fh.sse_message(MarkdownText(text), event="text")
                if sources := data.get("sources"):
                    spoken = await language() if language else DEFAULT_LANGUAGE
                    yield fh.sse_message(Sources(base, sources, spoken), event="sources")
                if kind == "text":
                    # Streams are for replies to a message (a greeting is never streamed).
                    done = {"id": rid, "text": text, "reply_to_id": "asked"}
                    yield fh.sse_message(ReplyActions(base, done), event="actions")
            elif kind == "dub" and settled is None:
                # (With `settled`, the bubble drawn at the end brings the player: one read.)
                yield fh.sse_message(Voice(base, rid, await voice_note()), event="voice")
            elif kind in ("error", "timeout"):
                yield fh.sse_message(_span(), event="text")  # no typing beside a failure
                yield fh.sse_message(Failure(base, rid, data.get("reason", "")), event="problem")
            elif kind == "dub_error":
                reason = data.get("reason", "")
                yield fh.sse_message(VoiceFailure(base, rid, reason), event="voice")
            if kind in _FINAL:
                if settled is not None and kind != "timeout":
                    yield fh.sse_message(await settled(), event="settled")
                break
    except ApiError as exc:
        yield fh.sse_message(Failure(base, rid, exc.detail), event="problem")
    yield fh.sse_message(_span(), event="done")


async def _events(upstream: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    # A network chunk may end inside a character (Cyrillic takes two bytes): the decoder keeps
    # the first byte until the rest arrives.
    decoder = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    async for chunk in upstream:
        buffer += decoder.decode(chunk)
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
