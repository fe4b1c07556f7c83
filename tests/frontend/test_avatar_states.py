"""Avatar states in a real browser: an honest lifecycle badge, the new avatar's checklist, the
notices above a chat, training status and versions, the loss chart, the portrait."""

import asyncio
import struct
import zlib
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests import factories
from tests.frontend.conftest import App, shot
from tests.frontend.test_browser import signup
from tests.text.corpus import lecture


def png(width: int = 8, height: int = 8) -> bytes:
    """A real (decodable) PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xc0\x40\x40" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def signed_in(page, app: App) -> tuple[httpx.AsyncClient, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A user signed in in the browser, and the same user's API client."""
    email = await signup(page, "States Tester")
    api = httpx.AsyncClient(base_url=app.api + "/api/v1", timeout=30)
    return api, await factories.login(api, email)


async def demo_profile_known(api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """The text worker has answered a health ping (the banner needs its profile)."""
    async with asyncio.timeout(60):
        while not (await api.get("/utils/profile", headers=headers)).json()["demo"]:
            await asyncio.sleep(0.5)


async def test_a_new_avatar_is_honest_about_being_untrained(  # type: ignore[no-untyped-def]
    page, app: App, tmp_path: Path
) -> None:
    api, headers = await signed_in(page, app)
    avatar = await factories.avatar(api, headers, name="Ada", language="en")
    aid = avatar["id"]

    await page.goto("/avatars")
    badge = page.locator(f"#avatar-{aid} .badge")
    await expect(badge).to_have_text("No materials")
    await expect(page.locator(f"#avatar-{aid} .badge.available")).to_have_count(0)

    await page.click("#avatar-list >> text=Ada")
    checklist = page.locator("#checklist")
    await expect(checklist.locator(".step")).to_have_count(3)
    await expect(checklist.locator(".step.done")).to_have_count(0)
    await expect(checklist.get_by_role("link", name="Upload materials")).to_have_attribute(
        "href", f"/avatars/{aid}/train"
    )
    await expect(checklist.get_by_role("link", name="Chat")).to_have_attribute(
        "href", f"/avatars/{aid}/chats"
    )

    # A portrait: chosen, uploaded at once, shown on the page and in the list.
    image = tmp_path / "ada.png"
    image.write_bytes(png())
    await page.set_input_files("#portrait-file", str(image))
    portrait = page.locator("#avatar-head img.portrait")
    await expect(portrait).to_be_visible()
    assert await portrait.evaluate("img => img.complete && img.naturalWidth") == 8
    served = await page.request.get(await portrait.get_attribute("src"))
    assert served.headers["content-type"] == "image/png" and await served.body() == png()
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image at all")
    await page.set_input_files("#portrait-file", str(not_image))
    await expect(page.locator(".fh-toast").last).to_contain_text("PNG, JPEG or WebP")
    await expect(portrait).to_be_visible()  # the earlier portrait stays
    await shot(page, "avatar-desktop")
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(page.locator("#checklist")).to_be_visible()
    await shot(page, "avatar-phone")
    await page.set_viewport_size({"width": 1100, "height": 900})
    await page.goto("/avatars")
    await expect(page.locator(f"#avatar-{aid} img.portrait")).to_be_visible()

    # A chat with it warns first, and says what the demo profile's replies are.
    await demo_profile_known(api, headers)
    chat = await factories.chat(api, headers, aid, "Hello")
    await page.goto(f"/avatars/{aid}/chats/{chat['id']}")
    warning = page.locator("#untrained-notice")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("untrained model")
    await expect(warning.get_by_role("link")).to_have_attribute("href", f"/avatars/{aid}/train")
    banner = page.locator("#demo-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("tiny model")
    await expect(banner).to_contain_text("not a clone")
    await api.aclose()


async def test_training_shows_phases_versions_and_the_loss_chart(  # type: ignore[no-untyped-def]
    page, app: App
) -> None:
    api, headers = await signed_in(page, app)
    aid = (await factories.avatar(api, headers, name="Bea", language="en"))["id"]
    uploaded = await factories.upload(api, headers, aid, [("lecture.txt", lecture(80).encode())])
    assert uploaded.status_code == 201, uploaded.text
    async with asyncio.timeout(120):
        while (
            lifecycle := (await api.get(f"/avatars/{aid}", headers=headers)).json()["lifecycle"]
        ) != "materials_ready":
            assert lifecycle == "processing", lifecycle
            await asyncio.sleep(0.3)

    await page.goto(f"/avatars/{aid}/train")
    status = page.locator("#train-status")
    await expect(status.locator(".badge")).to_have_text("Materials ready")
    await page.click("text=Start Training")
    await expect(page.locator("#versions")).to_contain_text("Version 1", timeout=120_000)
    await expect(status.locator(".badge")).to_have_text("Trained (v1)")
    await expect(status).not_to_contain_text("step 0")
    await expect(status).not_to_contain_text("?")

    # The chart: axes with ticks and labels, a point for every logged step, the card's width.
    run = (await api.get(f"/avatars/{aid}/train/status", headers=headers)).json()["run"]
    history = run["loss_history"]
    assert [int(p[0]) for p in history] == list(range(1, run["total_steps"] + 1))
    chart = status.locator("svg.loss-chart")
    await expect(chart.locator(".x-axis")).to_have_count(1)
    await expect(chart.locator(".y-axis")).to_have_count(1)
    assert await chart.locator(".x-tick").count() >= 2
    assert await chart.locator(".y-tick").count() >= 2
    await expect(chart.locator(".axis-label")).to_have_text(["step", "loss"])
    await expect(chart.locator("circle.point.train")).to_have_count(len(history))
    evals = [p for p in history if len(p) > 2]
    await expect(chart.locator("circle.point.eval")).to_have_count(len(evals))
    card, drawn = await status.bounding_box(), await chart.bounding_box()
    assert drawn["width"] > card["width"] * 0.9 and drawn["height"] >= 200

    # The version: its date, what it was trained on, its losses, and a note that stays.
    version = page.locator("#versions li.version").first
    await expect(version.locator("time")).to_contain_text(str(run["created_at"][:4]))
    await expect(version).to_contain_text("Trained on 1 file: lecture.txt")
    await expect(version).to_contain_text("train loss")
    await version.locator("input[name=note]").fill("First try: lecture only")
    await version.get_by_role("button", name="Save note").click()
    await expect(page.locator("#versions .version-note")).to_have_text("First try: lecture only")
    await page.reload()
    await expect(page.locator("#versions .version-note")).to_have_text("First try: lecture only")
    await shot(page, "train-desktop")
    await page.set_viewport_size({"width": 390, "height": 844})
    chart_box = await page.locator("svg.loss-chart").bounding_box()
    assert chart_box["width"] <= 390 and chart_box["width"] > 300
    await shot(page, "train-phone")
    await page.set_viewport_size({"width": 1100, "height": 900})

    # A run stopped at once reads "Stopped", not "Ready · step 0 of ?"; v1 stays.
    assert (await api.post(f"/avatars/{aid}/train/start", headers=headers)).status_code == 202
    assert (await api.post(f"/avatars/{aid}/train/stop", headers=headers)).status_code == 200
    await page.reload()
    await expect(status.locator(".badge")).to_have_text("Trained (v1)")
    await expect(page.locator("#train-ending")).to_contain_text("Stopped")
    await expect(status).not_to_contain_text("step 0")

    await page.goto("/avatars")
    await expect(page.locator(f"#avatar-{aid} .badge")).to_have_text("Trained (v1)")
    chat = await factories.chat(api, headers, aid, "After training")
    await page.goto(f"/avatars/{aid}/chats/{chat['id']}")
    await expect(page.locator("h1")).to_contain_text("After training")
    await expect(page.locator("#untrained-notice")).to_have_count(0)
    await api.aclose()
