"""Message actions in a real Chromium: stop, regenerate and its alternatives, edit and resend,
copy, delete, failures that survive a reload (with Retry and Voice again), Markdown that never
runs a script. The test plays the workers on the bus (as test_sources does), so every reply
says exactly what the test chose and stops, fails or arrives when the test wants."""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from playwright.async_api import expect

from tests import factories
from tests.backend.helpers import until
from tests.frontend.conftest import shot
from tests.frontend.test_browser import signup
from tests.frontend.test_sources import QuietApp, quiet_app  # noqa: F401  (the module's stack)


@dataclass
class Chat:
    page: Any
    api: httpx.AsyncClient
    headers: dict[str, str]
    aid: str
    cid: str

    @property
    def msgs(self) -> str:
        return f"/avatars/{self.aid}/chat/{self.cid}/msgs"

    async def send(self, text: str) -> tuple[str, str]:
        """Send through the API: the message's id and its pending reply's."""
        sent = await self.api.post(self.msgs, json={"message": text}, headers=self.headers)
        assert sent.status_code == 201, sent.text
        return sent.json()["message"]["id"], sent.json()["response_id"]

    async def history(self) -> list[dict[str, Any]]:
        return (await self.api.get(self.msgs, headers=self.headers)).json()

    async def open(self) -> None:
        await self.page.goto(f"/avatars/{self.aid}/chats/{self.cid}")


async def _chat(browser, app: QuietApp, **avatar: str):  # type: ignore[no-untyped-def]
    context = await browser.new_context(
        base_url=app.url,
        viewport={"width": 1100, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = await context.new_page()
    page.set_default_timeout(20_000)
    # Deleting and editing ask first; the user says yes.
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    email = await signup(page)
    api = httpx.AsyncClient(base_url=app.api + "/api/v1")
    headers = await factories.login(api, email)
    aid = (await factories.avatar(api, headers, name="Анна", language="ru", **avatar))["id"]
    cid = (await factories.chat(api, headers, aid))["id"]
    return context, Chat(page, api, headers, aid, cid)


async def _answer(app: QuietApp, chat: Chat, rid: str, text: str) -> None:
    """Play the text worker: the reply `rid` says `text`; wait until the backend has it."""
    await app.bus.publish(Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=rid, generated_text=text))
    await until(
        chat.api,
        f"{chat.msgs}/{rid}/response",
        chat.headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )


async def test_stop_keeps_the_streamed_text_and_says_stopped(browser, quiet_app: QuietApp) -> None:  # noqa: F811
    context, chat = await _chat(browser, quiet_app)
    page = chat.page
    await chat.open()
    await page.fill("#message", "Расскажи длинно")
    await page.press("#message", "Enter")
    reply = page.locator(".msg.avatar.pending")
    await expect(reply).to_contain_text("Анна печатает…")  # in the avatar's language
    rid = (await reply.get_attribute("id")).removeprefix("reply-")
    for index, piece in enumerate(["Первая часть", ", вторая"]):
        await quiet_app.bus.publish(
            Topic.SAVE_RESPONSE, ev.ResponseDelta(message_id=rid, index=index, text=piece)
        )
    bubble = page.locator(f"#reply-{rid}")
    await expect(bubble.locator(".text")).to_have_text("Первая часть, вторая")
    await bubble.get_by_role("button", name="Stop").click()
    await expect(bubble).to_contain_text("Stopped")
    await expect(bubble.locator(".text")).to_have_text("Первая часть, вторая")
    await expect(bubble.locator(".typing")).to_have_count(0)
    await expect(bubble.get_by_role("button", name="Stop")).to_have_count(0)
    await page.reload()
    await expect(bubble).to_contain_text("Stopped")
    await expect(bubble.locator(".text")).to_have_text("Первая часть, вторая")
    assert (await chat.history())[-1]["status"] == "stopped"
    await chat.api.aclose()
    await context.close()


async def test_regenerate_gives_alternatives_to_browse(browser, quiet_app: QuietApp) -> None:  # noqa: F811
    context, chat = await _chat(browser, quiet_app)
    page = chat.page
    question, first = await chat.send("Как дела?")
    await _answer(quiet_app, chat, first, "Ответ один")
    await chat.open()
    await page.locator(f"#reply-{first}").get_by_role("button", name="Regenerate").click()
    alternatives = page.locator(f"#alts-{question} > .msg.avatar")
    await expect(alternatives).to_have_count(2)
    second = (await alternatives.nth(1).get_attribute("id")).removeprefix("reply-")
    await _answer(quiet_app, chat, second, "Ответ два")
    shown = page.locator(f"#alts-{question} > .msg.avatar:visible")
    await expect(shown).to_have_count(1)
    await expect(shown.locator(".text")).to_have_text("Ответ два")
    await expect(shown.locator(".alt-count")).to_have_text("2/2")

    await shown.get_by_role("button", name="Previous reply").click()
    await expect(shown.locator(".text")).to_have_text("Ответ один")
    await expect(shown.locator(".alt-count")).to_have_text("1/2")
    await expect(shown.get_by_role("button", name="Previous reply")).to_be_disabled()
    await shown.get_by_role("button", name="Next reply").click()
    await expect(shown.locator(".text")).to_have_text("Ответ два")
    await shot(page, "messages-alternatives")

    await page.reload()  # the newest alternative leads, the older one is a click away
    await expect(shown.locator(".text")).to_have_text("Ответ два")
    await expect(shown.locator(".alt-count")).to_have_text("2/2")
    assert [m["text"] for m in await chat.history()] == ["Как дела?", "Ответ один", "Ответ два"]
    await chat.api.aclose()
    await context.close()


async def test_edit_and_resend_replaces_the_message_and_what_followed(
    browser,
    quiet_app: QuietApp,  # noqa: F811
) -> None:
    context, chat = await _chat(browser, quiet_app)
    page = chat.page
    first, first_reply = await chat.send("Первый вопрос")
    await _answer(quiet_app, chat, first_reply, "Первый ответ")
    _, second_reply = await chat.send("Второй вопрос")
    await _answer(quiet_app, chat, second_reply, "Второй ответ")
    await chat.open()
    await expect(page.locator(".turn")).to_have_count(2)

    user = page.locator(f"#msg-{first}")
    await user.get_by_role("button", name="Edit").click()
    editor = user.get_by_role("textbox", name="Edit message")
    await expect(editor).to_have_value("Первый вопрос")
    await editor.fill("Исправленный вопрос")
    await user.get_by_role("button", name="Send").click()
    await expect(page.locator(".turn")).to_have_count(1)
    await expect(page.locator(f"#msg-{first} .text")).to_have_text("Исправленный вопрос")
    await expect(page.locator("#messages")).not_to_contain_text("Второй")
    history = await chat.history()
    assert [(m["role"], m["text"], m["status"]) for m in history] == [
        ("user", "Исправленный вопрос", "ready"),
        ("avatar", "", "pending"),
    ]
    new_reply = history[1]["id"]
    await expect(page.locator(f"#reply-{new_reply}")).to_contain_text("печатает…")
    await _answer(quiet_app, chat, new_reply, "Новый ответ")
    await expect(page.locator(f"#reply-{new_reply} .text")).to_have_text("Новый ответ")
    await chat.api.aclose()
    await context.close()


async def test_copy_puts_the_text_on_the_clipboard_and_delete_removes(
    browser,
    quiet_app: QuietApp,  # noqa: F811
) -> None:
    context, chat = await _chat(browser, quiet_app)
    page = chat.page
    kept, kept_reply = await chat.send("Остаётся")
    await _answer(quiet_app, chat, kept_reply, "Это **важно**")
    gone, gone_reply = await chat.send("Уйдёт")
    await _answer(quiet_app, chat, gone_reply, "Тоже уйдёт")
    await chat.open()

    reply = page.locator(f"#reply-{kept_reply}")
    await reply.get_by_role("button", name="Copy").click()
    await expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == "Это **важно**"
    await page.locator(f"#msg-{kept}").get_by_role("button", name="Copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == "Остаётся"

    await page.locator(f"#reply-{gone_reply}").get_by_role("button", name="Delete").click()
    await expect(page.locator(f"#reply-{gone_reply}")).to_have_count(0)
    await page.locator(f"#msg-{gone}").get_by_role("button", name="Delete").click()
    await expect(page.locator(f"#turn-{gone}")).to_have_count(0)
    await page.reload()
    await expect(page.locator(".turn")).to_have_count(1)
    assert [m["id"] for m in await chat.history()] == [kept, kept_reply]
    await chat.api.aclose()
    await context.close()


async def test_failures_keep_their_words_and_a_way_to_try_again_after_a_reload(
    browser,
    quiet_app: QuietApp,  # noqa: F811
) -> None:
    context, chat = await _chat(browser, quiet_app)
    page = chat.page
    _, failing = await chat.send("Вопрос")
    await chat.open()
    bubble = page.locator(f"#reply-{failing}")
    await expect(bubble).to_contain_text("печатает…")
    # A worker's cause names an exception and a storage path with the user's and avatar's ids.
    path = f"avatars/{uuid.uuid4()}/{chat.aid}/versions/v1.tar.gz"
    await quiet_app.bus.publish(
        Topic.SAVE_RESPONSE,
        ev.ResponseFailed(message_id=failing, reason=f"generation failed: NoSuchKey: {path}"),
    )
    for _ in range(2):  # live, then after a reload
        await expect(bubble.locator(".error")).to_contain_text("No reply: ")
        await expect(bubble).to_contain_text("could not be loaded")
        await expect(bubble.get_by_role("button", name="Retry")).to_be_visible()
        await expect(bubble.locator(".typing")).to_have_count(0)
        assert "avatars/" not in await bubble.inner_text()
        assert "NoSuchKey" not in await page.content()
        await page.reload()

    _, mute = await chat.send("Ещё вопрос")
    await _answer(quiet_app, chat, mute, "Ответ без голоса")
    await quiet_app.bus.publish(
        Topic.SAVE_RESPONSE_DUB,
        ev.DubFailed(message_id=mute, reason=f"synthesis failed: AudioError: {path}"),
    )
    await until(
        chat.api,
        f"{chat.msgs}/{mute}/response",
        chat.headers,
        lambda r: r["dub_status"] == "failed",
    )
    await page.reload()
    voiceless = page.locator(f"#reply-{mute}")
    await expect(voiceless).to_contain_text("No voice: ")
    assert "avatars/" not in await voiceless.inner_text()
    await shot(page, "messages-failures")
    await voiceless.get_by_role("button", name="Voice again").click()
    await expect(voiceless).not_to_contain_text("No voice")
    await expect(voiceless.locator(".text")).to_have_text("Ответ без голоса")
    assert (await chat.history())[-1]["dub_status"] == "pending"

    await bubble.get_by_role("button", name="Retry").click()
    await expect(bubble).to_contain_text("печатает…")
    await chat.api.aclose()
    await context.close()


async def test_markdown_renders_and_markup_never_runs(browser, quiet_app: QuietApp) -> None:  # noqa: F811
    greeting = "**Здравствуйте!** Я <script>window.pwned = 1</script> Анна."
    context, chat = await _chat(browser, quiet_app, greeting=greeting)
    page = chat.page
    await chat.open()
    first = page.locator(".msg.avatar").first  # the greeting is the chat's first message
    await expect(first.locator("strong")).to_have_text("Здравствуйте!")
    await expect(first).to_contain_text("<script>window.pwned = 1</script>")

    await page.fill("#message", "<script>window.pwned = 2</script> и **звёзды**")
    await page.press("#message", "Enter")
    user = page.locator(".msg.user .text")
    await expect(user).to_have_text("<script>window.pwned = 2</script> и **звёзды**")
    rid = (await page.locator(".msg.avatar.pending").get_attribute("id")).removeprefix("reply-")
    await _answer(
        quiet_app, chat, rid, "Список:\n\n- *один*\n- `два`\n\n<img src=x onerror=alert(1)>"
    )
    reply = page.locator(f"#reply-{rid}")
    await expect(reply.locator("li")).to_have_count(2)
    await expect(reply.locator("em")).to_have_text("один")
    await expect(reply.locator("code")).to_have_text("два")
    await expect(reply.locator("img")).to_have_count(0)
    assert await page.evaluate("window.pwned === undefined")
    await expect(page.locator(".msg time[datetime]").first).to_be_attached()
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing sticks out
    await page.reload()
    await expect(reply.get_by_role("button", name="Regenerate")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await shot(page, "messages-phone")
    await chat.api.aclose()
    await context.close()
