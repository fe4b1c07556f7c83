"""The browser app shows the passages a reply was built on, folded under the reply: on the page
as loaded and when the reply arrives live. No workers run here: the test answers for the text
worker, so the reply carries exactly the sources it chose."""

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_frontend.app import create_app as create_frontend
from bishop_frontend.pages.replies import ReplyBubble, _fragments
from bishop_frontend.settings import FrontendSettings
from bishop_infra.bus import Bus, bus_from_url
from fasthtml import common as fh
from playwright.async_api import expect

from tests import factories
from tests.backend.helpers import until
from tests.conftest import serve, stack_settings
from tests.factories import PASSWORD
from tests.support.servers import serve_app

# Markup in a passage is the user's text: it must show as written, never as HTML.
PASSAGE = "Импульс — это <b>масса</b> на скорость & он сохраняется."


@dataclass
class QuietApp:
    url: str
    api: str
    bus: Bus


@pytest.fixture(scope="module")
async def quiet_app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[QuietApp]:
    root = tmp_path_factory.mktemp("quiet-app")
    settings = stack_settings("embedded", root, None)
    bus = bus_from_url(settings.bus_url, client_id="test-text-worker")
    await bus.start()
    async with serve(settings) as api:
        frontend = FrontendSettings(
            _env_file=None, api_url=api, session_secret=uuid.uuid4().hex * 2, data_dir=root
        )
        async with serve_app(create_frontend(frontend)) as url:
            yield QuietApp(url=url, api=api, bus=bus)
    await bus.stop()


async def test_a_reply_lists_its_sources_folded_live_and_on_load(
    browser, quiet_app: QuietApp
) -> None:  # type: ignore[no-untyped-def]
    context = await browser.new_context(base_url=quiet_app.url)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    email = f"sources-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/signup")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/avatars")
    async with httpx.AsyncClient(base_url=quiet_app.api + "/api/v1") as api:
        headers = await factories.login(api, email)
        aid = (await factories.avatar(api, headers, name="Анна", language="ru"))["id"]
        uploaded = await factories.upload(api, headers, aid, [("lecture.txt", factories.TEXT)])
        mid = uploaded.json()[0]["id"]
        cid = (await factories.chat(api, headers, aid))["id"]
        sent = await api.post(
            f"/avatars/{aid}/chat/{cid}/msgs",
            json={"message": "Что такое импульс?"},
            headers=headers,
        )
        rid = sent.json()["response_id"]

    await page.goto(f"/avatars/{aid}/chats/{cid}")
    reply = page.locator(f"#reply-{rid}")
    await expect(reply).to_contain_text("Анна печатает…")
    await expect(reply.locator("details")).to_have_count(0)
    source = ev.Source(material_id=mid, passage_id="p1", text=PASSAGE, rank=1)
    await quiet_app.bus.publish(
        Topic.SAVE_RESPONSE,
        ev.SaveResponse(message_id=rid, generated_text="Это mv.", sources=[source]),
    )
    await _folded_sources(reply, aid, mid)  # arrived through the page's event stream

    # Settled (no voice), the reply is drawn whole on load, with no stream.
    await quiet_app.bus.publish(
        Topic.SAVE_RESPONSE_DUB, ev.DubFailed(message_id=rid, reason="no voice here")
    )
    async with httpx.AsyncClient(base_url=quiet_app.api + "/api/v1") as api:
        path = f"/avatars/{aid}/chat/{cid}/msgs/{rid}/response"
        await until(api, path, headers, lambda r: r["dub_status"] == "failed")
    await page.reload()
    assert await reply.get_attribute("sse-connect") is None
    await _folded_sources(reply, aid, mid)

    # The file name leads to the material on the avatar's Train page.
    await reply.get_by_role("link", name="lecture.txt").click()
    await page.wait_for_url(re.compile(rf".*/avatars/{aid}/train#material-{mid}$"))
    await expect(page.locator(f"#material-{mid}")).to_contain_text("lecture.txt")
    await context.close()


async def _folded_sources(reply, aid: str, mid: str) -> None:  # type: ignore[no-untyped-def]
    details = reply.locator("details.sources")
    await expect(details.locator("summary")).to_have_text("Источники (1)")
    assert await details.evaluate("d => d.open") is False
    passage = details.locator("blockquote")
    await expect(passage).to_be_hidden()
    await details.locator("summary").click()
    await expect(passage).to_be_visible()
    await expect(passage).to_have_text(PASSAGE)  # the markup shows as the characters it is
    link = details.get_by_role("link", name="lecture.txt")
    await expect(link).to_have_attribute("href", f"/avatars/{aid}/train#material-{mid}")


SOURCES = [
    {"material_id": "m1", "file_name": "a<i>.txt", "text": "<script>x()</script>", "rank": 1},
    {"material_id": "m2", "file_name": "b.txt", "text": "второй", "rank": 2},
]


def test_the_label_speaks_the_avatars_language_and_the_passages_stay_text() -> None:
    reply = {"id": "r", "status": "ready", "text": "Hi", "dub_status": "none", "sources": SOURCES}
    english = fh.to_xml(ReplyBubble("/avatars/A/chats/C", reply, {"language": "en"}))
    russian = fh.to_xml(ReplyBubble("/avatars/A/chats/C", reply, {"language": "ru"}))
    assert "<summary>Sources (2)</summary>" in english
    assert "<summary>Источники (2)</summary>" in russian
    assert "<script>" not in english and "&lt;script&gt;x()&lt;/script&gt;" in english
    assert "<details" in english and "<details open" not in english
    assert 'href="/avatars/A/train#material-m1"' in english
    nothing = fh.to_xml(ReplyBubble("/b", {**reply, "sources": []}, {"language": "en"}))
    assert "<details" not in nothing


async def test_the_relay_sends_the_sources_with_the_text() -> None:
    async def upstream() -> AsyncIterator[bytes]:
        data = {"text": "Hi", "passage_ids": [], "sources": SOURCES}
        yield f"event: text\ndata: {json.dumps(data)}\n\n".encode()
        yield b'event: dub_error\ndata: {"reason": "none"}\n\n'

    async def no_voice() -> None:
        raise AssertionError("not voiced")

    async def english() -> str:
        return "en"

    out = [m async for m in _fragments("/avatars/A/chats/C", "r", upstream(), no_voice, english)]
    kinds = [m.split("\n", 1)[0] for m in out]
    assert kinds == [
        "event: text",
        "event: sources",
        "event: actions",
        "event: voice",
        "event: done",
    ]
    assert "Sources (2)" in out[1] and "<script>" not in out[1] and "b.txt" in out[1]
