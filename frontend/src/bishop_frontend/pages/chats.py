"""Chats of an avatar and the chat page: the conversation, with the chat list and search beside
it."""

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from fasthtml import common as fh
from starlette.requests import Request
from starlette.responses import Response

from bishop_frontend import states
from bishop_frontend.components import Errors, Field, IdempotencyKey, Layout, Nav
from bishop_frontend.pages.common import api, user
from bishop_frontend.pages.replies import Bubbles, EditorTemplate

ar = fh.APIRouter()
# Messages shown at first; older ones load as the user scrolls up. Small enough that a long
# chat opens fast (each message is a few dozen elements to build).
PAGE = 40
FIND_PAGES = 10  # pages read back at most to show a message a search found
SEARCH_MAX = 200  # characters of a search (the backend refuses longer ones)
ENTER_SENDS = (
    "if(event.key==='Enter'&&!event.shiftKey){event.preventDefault();this.form.requestSubmit();}"
)
AFTER_SEND = "if(event.detail.successful){this.reset();this.querySelector('textarea').focus();}"


def ChatRow(aid: str, chat: dict[str, Any]) -> Any:
    """A chat on the list page: its title and newest message, to rename or delete."""
    cid = chat["id"]
    return fh.Li(
        fh.Div(
            fh.Div(
                Nav(f"/avatars/{aid}/chats/{cid}", chat["title"]),
                LastMessage(chat),
                cls="grow",
            ),
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


def LastMessage(chat: dict[str, Any]) -> Any:
    """A chat's newest message and when it came, in one line."""
    when = chat.get("last_message_at")
    return fh.Div(
        fh.Span(chat.get("last_message") or "No messages yet", cls="snippet"),
        fh.Time(short_time(when), datetime=when, cls="when") if when else "",
        cls="chat-summary muted",
    )


def short_time(iso: str, now: datetime | None = None) -> str:
    """How long ago `iso` was, in a few characters ("now", "5 min", "3 h", "2 d", "3 Dec")."""
    when = datetime.fromisoformat(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} d"
    return f"{when.day} {when:%b %Y}"


def SidebarChat(aid: str, chat: dict[str, Any], current: str) -> Any:
    """A chat in the chat page's sidebar: a link, and a small menu to rename or delete it."""
    cid = chat["id"]
    here = cid == current
    return fh.Li(
        fh.A(
            fh.Span(chat["title"], cls="title"),
            LastMessage(chat),
            href=f"/avatars/{aid}/chats/{cid}",
            hx_get=f"/avatars/{aid}/chats/{cid}",
            hx_target="#main",
            hx_select="#main",
            hx_swap="outerHTML",
            hx_push_url="true",
            aria_current="page" if here else None,
            cls="side-link",
        ),
        fh.Details(
            fh.Summary("⋯", aria_label=f"Actions for “{chat['title']}”", title="Rename or delete"),
            fh.Div(
                fh.Form(
                    fh.Input(
                        type="text",
                        name="title",
                        value=chat["title"],
                        aria_label="Chat title",
                        required=True,
                        maxlength=255,
                    ),
                    fh.Input(type="hidden", name="current", value=current),
                    fh.Button("Rename", type="submit", cls="secondary"),
                    hx_post=f"/avatars/{aid}/chats/{cid}/rename",
                    hx_target=f"#side-{cid}",
                    hx_swap="outerHTML",
                ),
                fh.Button(
                    "Delete",
                    cls="danger",
                    hx_delete=f"/avatars/{aid}/chats/{cid}?current={current}",
                    hx_target=f"#side-{cid}",
                    hx_swap="outerHTML",
                    hx_confirm=f"Delete the chat “{chat['title']}”?",
                ),
                cls="menu-panel",
            ),
            cls="chat-menu",
        ),
        id=f"side-{cid}",
        cls="current" if here else None,
    )


def Sidebar(avatar: dict[str, Any], chats: list[dict[str, Any]], current: str) -> Any:
    aid = avatar["id"]
    return fh.Aside(
        fh.Div(
            Nav(f"/avatars/{aid}", f"← {avatar['name']}"),
            fh.Button(
                "New chat",
                type="button",
                hx_post=f"/avatars/{aid}/chats/new",
                cls="secondary",
            ),
            fh.Button(
                "Close",
                type="button",
                cls="secondary only-phone",
                data_chat_sidebar="close",
                aria_controls="chat-sidebar",
            ),
            cls="side-head",
        ),
        fh.Form(
            fh.Input(
                type="search",
                name="q",
                id="chat-search",
                placeholder="Search all chats",
                aria_label="Search all your chats",
                maxlength=SEARCH_MAX,
                autocomplete="off",
            ),
            role="search",
            hx_get="/chats/search",
            hx_trigger="submit, input delay:250ms",
            hx_target="#search-results",
            cls="side-search",
        ),
        fh.Div(id="search-results", aria_live="polite"),
        fh.Ul(
            *[SidebarChat(aid, c, current) for c in chats],
            id="chat-sidebar-list",
            cls="side-list",
            aria_label=f"Chats with {avatar['name']}",
        ),
        id="chat-sidebar",
        cls="chat-sidebar",
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
            hx_swap="afterbegin",
            hx_on__after_request="if(event.detail.successful) this.reset()",
            cls="card",
        ),
        fh.Ul(*[ChatRow(aid, c) for c in chats], id="chat-list", cls="plain card"),
        user=user(sess),
        lang=avatar["language"],
    )


@ar("/avatars/{aid}/chats", methods=["post"])
async def create_chat(req: Request, sess, aid: str, title: str = "") -> Any:
    chat = await api(
        req, sess, "POST", f"/avatars/{aid}/chat", json={"title": title.strip() or "Chat"}
    )
    fh.add_toast(sess, "Chat created.", "success")
    return ChatRow(aid, chat)


@ar("/avatars/{aid}/chats/new", methods=["post"])
async def new_chat(req: Request, sess, aid: str) -> Any:
    """A fresh chat, opened at once (from the chat page's sidebar)."""
    chat = await api(req, sess, "POST", f"/avatars/{aid}/chat", json={"title": "New chat"})
    return _open(f"/avatars/{aid}/chats/{chat['id']}")


def _open(path: str) -> Response:
    """Tell htmx to load `path` into #main, as an in-app link does."""
    where = {"path": path, "target": "#main", "select": "#main", "swap": "outerHTML"}
    return Response(headers={"HX-Location": json.dumps(where)})


@ar("/avatars/{aid}/chats/{cid}/rename", methods=["post"])
async def rename_chat(
    req: Request, sess, aid: str, cid: str, title: str = "", current: str | None = None
) -> Any:
    chat = await api(
        req, sess, "PATCH", f"/avatars/{aid}/chat/{cid}", json={"title": title.strip()}
    )
    fh.add_toast(sess, "Chat renamed.", "success")
    if current is None:
        return ChatRow(aid, chat)
    # The sidebar's summary stays as it was: renaming does not change the messages.
    listed = {c["id"]: c for c in await api(req, sess, "GET", f"/avatars/{aid}/chat")}
    item = SidebarChat(aid, listed.get(cid, chat), current)
    if cid != current:
        return item
    return item, fh.H1(chat["title"], id="chat-title", hx_swap_oob="true")


@ar("/avatars/{aid}/chats/{cid}", methods=["delete"])
async def delete_chat(req: Request, sess, aid: str, cid: str, current: str = "") -> Any:
    await api(req, sess, "DELETE", f"/avatars/{aid}/chat/{cid}")
    fh.add_toast(sess, "Chat deleted.", "success")
    if current == cid:
        return _open(f"/avatars/{aid}/chats")
    return ""


@ar("/avatars/{aid}/chats/{cid}", methods=["get"])
async def chat_page(req: Request, sess, aid: str, cid: str, at: str = "") -> Any:
    # Asked together: the backend answers them side by side.
    avatar, chat, chats, (messages, more) = await asyncio.gather(
        api(req, sess, "GET", f"/avatars/{aid}"),
        api(req, sess, "GET", f"/avatars/{aid}/chat/{cid}"),
        api(req, sess, "GET", f"/avatars/{aid}/chat"),
        _messages_showing(req, sess, aid, cid, at),
    )
    bubbles = _bubbles(aid, cid, messages, more, avatar)
    notices = await states.chat_notices(req, sess, avatar)
    return Layout(
        chat["title"],
        fh.Div(
            Conversation(f"/avatars/{aid}/chats/{cid}", chat, avatar, bubbles, notices, at),
            Sidebar(avatar, chats, cid),
            EditorTemplate(),
            cls="chat-app",
            id="chat-app",
        ),
        user=user(sess),
        lang=avatar["language"],
        skip_link=False,
    )


def Conversation(
    base: str,
    chat: dict[str, Any],
    avatar: dict[str, Any],
    bubbles: list[Any],
    notices: tuple[Any, ...],
    at: str,
) -> Any:
    """The messages in a pane of their own, the composer pinned under them.

    The composer comes first in the page's order (CSS shows it at the bottom): a keyboard
    reaches it in a few presses, before the messages and their players."""
    return fh.Section(
        Composer(base),
        fh.Div(
            fh.Button(
                "☰ Chats",
                type="button",
                cls="secondary only-phone",
                data_chat_sidebar="open",
                aria_controls="chat-sidebar",
            ),
            fh.H1(chat["title"], id="chat-title"),
            fh.Span(f"with {avatar['name']}", cls="muted with"),
            cls="chat-head",
        ),
        fh.Div(*notices, cls="chat-notices") if notices else "",
        fh.Div(
            fh.Div(
                *bubbles,
                id="messages",
                cls="messages",
                aria_live="polite",
                data_at=_anchor(at) if at else None,
            ),
            fh.Button("New messages ↓", type="button", id="new-messages", cls="pill", hidden=True),
            cls="messages-pane",
        ),
        cls="conversation",
    )


def _anchor(message_id: str) -> str:
    """Ids of the bubbles a message may be in (see `replies.UserBubble` and `ReplyBubble`)."""
    return f"msg-{message_id} reply-{message_id}"


def Composer(base: str) -> Any:
    return fh.Form(
        fh.Label("Message", fr="message", cls="visually-hidden"),
        fh.Div(
            fh.Textarea(
                name="message",
                id="message",
                rows=2,
                required=True,
                maxlength=8000,
                placeholder="Write a message (Enter sends, Shift+Enter adds a line)",
                onkeydown=ENTER_SENDS,
                autofocus=True,
            ),
            fh.Button("Send", type="submit"),
            cls="composer-row",
        ),
        Errors(id="send-errors"),
        IdempotencyKey("send"),
        hx_post=f"{base}/send",
        hx_target="#messages",
        hx_swap="beforeend",
        hx_on__after_request=AFTER_SEND,
        cls="composer",
        id="composer",
    )


async def _messages_showing(
    req: Request, sess, aid: str, cid: str, at: str
) -> tuple[list[dict[str, Any]], bool]:
    """The newest page of messages; with `at`, enough pages back to show that message too;
    and whether there are older ones."""
    messages, more = await _page(req, sess, aid, cid, None)
    for _ in range(FIND_PAGES if at else 0):
        if not more or any(m["id"] == at for m in messages):
            break
        earlier, more = await _page(req, sess, aid, cid, messages[0]["id"])
        messages = earlier + messages
    return messages, more


async def _page(
    req: Request, sess, aid: str, cid: str, before: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """The newest page of messages (before `before`), and whether there are older ones."""
    params: dict[str, Any] = {"limit": PAGE + 1}
    if before:
        params["before"] = before
    messages = await api(req, sess, "GET", f"/avatars/{aid}/chat/{cid}/msgs", params=params)
    return messages[-PAGE:], len(messages) > PAGE


def _bubbles(
    aid: str, cid: str, messages: list[dict[str, Any]], more: bool, avatar: dict[str, Any]
) -> list[Any]:
    """The messages' bubbles, led by a button for the page before them if there is one."""
    base = f"/avatars/{aid}/chats/{cid}"
    bubbles = Bubbles(base, messages, avatar)
    if more:
        bubbles.insert(
            0,
            fh.Button(
                "Load earlier messages",
                cls="secondary load-earlier",
                hx_get=f"{base}/earlier?before={messages[0]['id']}",
                hx_target="this",
                hx_swap="outerHTML",
            ),
        )
    return bubbles


@ar("/avatars/{aid}/chats/{cid}/earlier", methods=["get"])
async def earlier(req: Request, sess, aid: str, cid: str, before: str) -> Any:
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    messages, more = await _page(req, sess, aid, cid, before)
    return tuple(_bubbles(aid, cid, messages, more, avatar))


@ar("/chats/search", methods=["get"])
async def search(req: Request, sess, q: str = "") -> Any:
    """Results of the sidebar's search over all the user's chats."""
    q = " ".join(q.split())[:SEARCH_MAX]
    if not q:
        return ""
    hits = await api(req, sess, "GET", "/chats/search", params={"q": q, "limit": 20})
    if not hits:
        return fh.P("Nothing found.", cls="muted search-empty")
    return fh.Ul(*[SearchResult(h, q) for h in hits], cls="search-hits", aria_label="Found")


def SearchResult(hit: dict[str, Any], q: str) -> Any:
    path = f"/avatars/{hit['avatar_id']}/chats/{hit['chat_id']}"
    if hit["message_id"]:
        path += f"?at={hit['message_id']}"
    return fh.Li(
        fh.A(
            fh.Span(f"{hit['avatar_name']} · {hit['chat_title']}", cls="where"),
            fh.Span(*marked(hit["snippet"], q), cls="snippet"),
            href=path,
            hx_get=path,
            hx_target="#main",
            hx_select="#main",
            hx_swap="outerHTML",
            hx_push_url="true",
        )
    )


def marked(text: str, q: str) -> tuple[Any, ...]:
    """`text` with the first place it contains `q` (case aside) marked."""
    at = text.lower().find(q.lower())
    if at < 0:
        return (text,)
    end = at + len(q)
    return text[:at], fh.Mark(text[at:end]), text[end:]
