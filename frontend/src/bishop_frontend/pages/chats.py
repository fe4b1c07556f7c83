"""Chats of an avatar and the chat page around its messages."""

from typing import Any

from fasthtml import common as fh
from starlette.requests import Request

from bishop_frontend.components import Errors, Field, IdempotencyKey, Layout, Nav
from bishop_frontend.pages.common import api, user
from bishop_frontend.pages.replies import ReplyBubble, UserBubble

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
