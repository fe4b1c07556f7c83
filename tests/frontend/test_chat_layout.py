"""The chat page as a chat app: it opens at the newest message, follows replies, pages back,
is reached by keyboard at once, has the chat list and search beside it, and fits a phone."""

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from bishop_frontend.pages.chats import PAGE, marked, short_time
from fasthtml.common import to_xml
from playwright.async_api import expect

from tests.factories import PASSWORD
from tests.frontend.conftest import App, shot
from tests.frontend.test_browser import signup

SCROLL_STATE = """() => {
    const box = document.getElementById('messages');
    return {top: box.scrollTop, max: box.scrollHeight - box.clientHeight};
}"""


async def _api_for(app: App, email: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
    api = httpx.AsyncClient(base_url=app.api + "/api/v1", timeout=30)
    token = await api.post("/login/access-token", data={"username": email, "password": PASSWORD})
    return api, {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _post(api: httpx.AsyncClient, headers: dict[str, str], path: str, **body: Any) -> Any:
    response = await api.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _make(api: httpx.AsyncClient, headers: dict[str, str], path: str, **body: Any) -> str:
    """The id of a new avatar or chat."""
    return (await _post(api, headers, path, **body))["id"]


async def _say(api: httpx.AsyncClient, headers: dict[str, str], aid: str, cid: str, text: str):  # type: ignore[no-untyped-def]
    """Send a message; its id."""
    sent = await _post(api, headers, f"/avatars/{aid}/chat/{cid}/msgs", message=text)
    return sent["message"]["id"]


async def _signup_by_api(api: httpx.AsyncClient) -> dict[str, str]:
    email = f"other-{uuid.uuid4().hex[:8]}@example.com"
    await api.post("/users/signup", json={"email": email, "password": PASSWORD})
    token = await api.post("/login/access-token", data={"username": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _all_answered(api: httpx.AsyncClient, headers: dict[str, str], msgs: str) -> list:
    """Wait until every reply is written and voiced (or failed): nothing left to stream."""
    async with asyncio.timeout(240):
        while True:
            stored = (await api.get(msgs, params={"limit": 1000}, headers=headers)).json()
            if all(m["status"] != "pending" and m["dub_status"] != "pending" for m in stored):
                return stored
            await asyncio.sleep(0.5)


async def _focus_from_top(page) -> None:  # type: ignore[no-untyped-def]
    """Start the keyboard's way from the top of the page, before the top bar."""
    await page.evaluate(
        """() => {
            document.activeElement && document.activeElement.blur();
            const start = document.createElement('span');
            start.tabIndex = -1;
            document.body.prepend(start);
            start.focus();
        }"""
    )


async def _tabs_to_composer(page, most: int = 6) -> int:  # type: ignore[no-untyped-def]
    """Tab presses to the composer, and nothing else pressed."""
    for presses in range(1, most + 1):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "message":
            return presses
    return most + 1


async def _visible_in_pane(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    return await page.evaluate(
        """sel => {
            const box = document.getElementById('messages').getBoundingClientRect();
            const el = document.querySelector(sel).getBoundingClientRect();
            return el.bottom > box.top && el.top < box.bottom && el.height > 0;
        }""",
        selector,
    )


async def test_a_long_chat_opens_at_the_newest_message_and_follows_replies(  # type: ignore[no-untyped-def]
    page, app: App
) -> None:
    email = await signup(page)
    api, headers = await _api_for(app, email)
    aid = await _make(api, headers, "/avatars", name="Лектор")
    cid = await _make(api, headers, f"/avatars/{aid}/chat", title="Длинный")
    msgs = f"/avatars/{aid}/chat/{cid}/msgs"
    for n in range(60):  # 120 messages with the replies
        await _say(api, headers, aid, cid, f"вопрос {n}")
    stored = await _all_answered(api, headers, msgs)
    assert len(stored) == 120

    await page.goto(f"/avatars/{aid}/chats/{cid}")
    newest = f"#reply-{stored[-1]['id']}"
    await expect(page.locator(newest)).to_be_attached()
    state = await page.evaluate(SCROLL_STATE)
    assert state["max"] > 1000 and state["top"] >= state["max"] - 2  # opened at the bottom
    assert await _visible_in_pane(page, newest)
    oldest_on_page = stored[len(stored) - PAGE]  # the first page is the newest PAGE messages
    assert not await _visible_in_pane(page, f"#msg-{oldest_on_page['id']}")
    assert await page.evaluate("document.activeElement.id") == "message"  # ready to type
    # The page itself does not scroll: the messages scroll in their pane.
    assert await page.evaluate("document.documentElement.scrollHeight <= innerHeight + 1")

    await _focus_from_top(page)
    assert await _tabs_to_composer(page) <= 3

    # Sending: the composer is cleared and keeps focus; the chat follows the reply.
    await page.fill("#message", "Новый вопрос")
    await page.press("#message", "Enter")
    mine = page.locator(".msg.user", has_text="Новый вопрос")
    await expect(mine).to_have_count(1)
    await expect(page.locator("#message")).to_have_value("")
    assert await page.evaluate("document.activeElement.id") == "message"
    reply = page.locator(".msg.avatar").last
    await expect(reply.locator(".typing")).to_have_count(0, timeout=60_000)
    await expect(reply.locator("audio, .muted")).not_to_have_count(0, timeout=60_000)
    await page.wait_for_timeout(200)
    state = await page.evaluate(SCROLL_STATE)
    assert state["top"] >= state["max"] - 2
    assert await _visible_in_pane(page, f"#{await reply.get_attribute('id')}")
    await shot(page, "chat-desktop")

    # Scrolled up while a reply comes in: a pill says so, and takes the reader down.
    pill = page.locator("#new-messages")
    await expect(pill).to_be_hidden()
    count = await page.locator(".msg.user").count()
    await page.fill("#message", "Ещё вопрос")
    await page.press("#message", "Enter")
    await page.wait_for_function(f"document.querySelectorAll('.msg.user').length > {count}")
    await page.evaluate("document.getElementById('messages').scrollTop = 2000")
    await expect(pill).to_be_visible(timeout=60_000)
    state = await page.evaluate(SCROLL_STATE)
    assert state["top"] < state["max"] - 100  # it did not pull the reader down
    await pill.click()
    await expect(pill).to_be_hidden()
    state = await page.evaluate(SCROLL_STATE)
    assert state["top"] >= state["max"] - 2

    # At the top, the older messages come in above, and what was in view stays in place.
    oldest_shown = page.locator(".msg").first
    oldest_id = await oldest_shown.get_attribute("id")
    assert oldest_id is not None
    await expect(page.locator(".load-earlier")).to_have_count(1)
    await page.evaluate("document.getElementById('messages').scrollTop = 0")
    top_before = await page.evaluate(
        "id => document.getElementById(id).getBoundingClientRect().top", oldest_id
    )
    # The page before the first one (PAGE older messages); more remain above it.
    await expect(page.locator(f"#msg-{stored[len(stored) - 2 * PAGE]['id']}")).to_have_count(1)
    await expect(page.locator(".load-earlier")).to_have_count(1)
    top_after = await page.evaluate(
        "id => document.getElementById(id).getBoundingClientRect().top", oldest_id
    )
    assert abs(top_after - top_before) < 5
    state = await page.evaluate(SCROLL_STATE)
    assert state["top"] > 500  # the new messages are above, not in view
    await api.aclose()


async def test_sidebar_search_new_chat_and_phone_layout(page, app: App) -> None:  # type: ignore[no-untyped-def]
    email = await signup(page, "Ира")
    api, headers = await _api_for(app, email)
    aid = await _make(api, headers, "/avatars", name="Мария")
    other = await _make(api, headers, "/avatars", name="Борис")
    first = await _make(api, headers, f"/avatars/{aid}/chat", title="Первый")
    elsewhere = await _make(api, headers, f"/avatars/{other}/chat", title="У Бориса")
    for n in range(3):
        await _say(api, headers, aid, first, f"привет {n}")
    found = await _say(api, headers, other, elsewhere, "Обсудим ИМПУЛЬС завтра")
    # Another user's matching chat is never found.
    stranger = await _signup_by_api(api)
    theirs = await _make(api, stranger, "/avatars", name="Чужой")
    await _say(
        api,
        stranger,
        theirs,
        await _make(api, stranger, f"/avatars/{theirs}/chat", title="импульс"),
        "импульс",
    )
    second = await _make(api, headers, f"/avatars/{aid}/chat", title="Второй")

    await page.goto(f"/avatars/{aid}/chats/{second}")
    side = page.locator("#chat-sidebar-list li")
    await expect(side).to_have_count(2)
    # The newest first, the current one marked, each with its newest message.
    await expect(side.first).to_contain_text("Второй")
    await expect(side.first).to_have_attribute("class", re.compile("current"))
    await expect(side.nth(1)).to_contain_text("Первый")
    # Its newest message: the last question, or the reply to it if that came in already.
    stored = (await api.get(f"/avatars/{aid}/chat/{first}/msgs", headers=headers)).json()
    newest = [" ".join(m["text"].split())[:110] for m in stored[-2:] if m["text"].strip()]
    snippet = await side.nth(1).locator(".snippet").inner_text()
    assert any(snippet.startswith(text) for text in newest), (snippet, newest)

    # Search across all the user's chats, in another case, opens the chat at the message.
    await page.fill("#chat-search", "импульс")
    hit = page.locator("#search-results a")
    await expect(hit).to_have_count(1)
    await expect(hit).to_contain_text("Борис · У Бориса")
    await expect(hit.locator("mark")).to_have_text("ИМПУЛЬС")
    await hit.click()
    await page.wait_for_url(re.compile(f"/avatars/{other}/chats/{elsewhere}"))
    await expect(page.locator("#chat-title")).to_have_text("У Бориса")
    await expect(page.locator(f"#msg-{found}")).to_have_class(re.compile("found"))
    assert await _visible_in_pane(page, f"#msg-{found}")

    # A new chat opens at once; its menu renames it; another chat's menu deletes that one.
    await page.click("text=← Борис")
    await page.goto(f"/avatars/{aid}/chats/{second}")
    await page.click("#chat-sidebar button:has-text('New chat')")
    await expect(page.locator("#chat-title")).to_have_text("New chat")
    await expect(side).to_have_count(3)
    current = page.locator("#chat-sidebar-list li.current")
    await current.locator("summary").click()
    await current.locator("input[name=title]").fill("Третий")
    await current.locator("button", has_text="Rename").click()
    await expect(page.locator("#chat-title")).to_have_text("Третий")
    await expect(page.locator("#chat-sidebar-list li.current .title")).to_have_text("Третий")
    doomed = page.locator(f"#side-{first}")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await doomed.locator("summary").click()
    await doomed.locator("button", has_text="Delete").click()
    await expect(doomed).to_have_count(0)
    await expect(side).to_have_count(2)
    assert (await api.get(f"/avatars/{aid}/chat/{first}", headers=headers)).status_code == 404

    # The list page shows the same summaries, and makes chats too.
    await page.goto(f"/avatars/{other}/chats")
    await expect(page.locator("#chat-list li")).to_have_count(1)
    await expect(page.locator("#chat-list li time")).to_have_count(1)
    await page.fill("#title", "Ещё один")
    await page.click("text=Create chat")
    await expect(page.locator("#chat-list li").first).to_contain_text("Ещё один")
    await expect(page.locator("#chat-list li").first).to_contain_text("No messages yet")

    # A phone: the composer is in view, the chat list opens from a button.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"/avatars/{other}/chats/{elsewhere}")
    composer = await page.locator("#message").bounding_box()
    assert composer and composer["y"] >= 0 and composer["y"] + composer["height"] <= 844
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await expect(page.locator("#chat-sidebar")).to_be_hidden()
    await shot(page, "chat-phone")
    await page.click("[data-chat-sidebar=open]")
    await expect(page.locator("#chat-sidebar")).to_be_visible()
    await expect(page.locator("#chat-search")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#chat-sidebar")).to_be_hidden()
    await api.aclose()


def test_short_times_and_marked_matches() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    ago = [now - timedelta(seconds=s) for s in (5, 300, 7200, 2 * 86400, 30 * 86400)]
    assert [short_time(t.isoformat(), now) for t in ago] == [
        "now",
        "5 min",
        "2 h",
        "2 d",
        "3 Nov 2026",
    ]
    parts = marked("Обсудим ИМПУЛЬС завтра", "импульс")
    assert parts[0] == "Обсудим " and "ИМПУЛЬС</mark>" in to_xml(parts[1]) and parts[2] == " завтра"
    assert marked("nothing", "импульс") == ("nothing",)
