"""The app's frame in Chromium: dark mode, toasts, the skip link and focus, the favicon, the
document's language, and the API docs working with no internet."""

import re
from urllib.parse import urlparse

import httpx
from playwright.async_api import expect

from tests import factories
from tests.frontend.conftest import App, shot
from tests.frontend.test_browser import signup

DARK_BACKGROUND = "rgb(18, 21, 27)"
LIGHT_BACKGROUND = "rgb(247, 248, 250)"


async def background(page) -> str:  # type: ignore[no-untyped-def]
    return await page.evaluate("getComputedStyle(document.body).backgroundColor")


async def test_dark_mode_follows_the_system_and_the_toggle(browser, app: App) -> None:  # type: ignore[no-untyped-def]
    context = await browser.new_context(base_url=app.url, color_scheme="dark")
    page = await context.new_page()
    try:
        await page.goto("/")
        assert await background(page) == DARK_BACKGROUND
        toggle = page.locator(".theme-toggle")
        await expect(toggle).to_have_attribute("aria-pressed", "true")
        await toggle.click()
        assert await background(page) == LIGHT_BACKGROUND
        await expect(toggle).to_have_attribute("aria-pressed", "false")
        await page.reload()  # the choice is kept in this browser
        assert await background(page) == LIGHT_BACKGROUND
        await page.locator(".theme-toggle").click()
        assert await background(page) == DARK_BACKGROUND

        # A chat in the dark, for the docs: the greeting is Markdown, the reply's panes dark.
        email = await signup(page)
        async with httpx.AsyncClient(base_url=app.api + "/api/v1") as api:
            headers = await factories.login(api, email)
            avatar = await factories.avatar(
                api, headers, name="Вера", greeting="Здравствуйте! Я **Вера**, спрашивайте."
            )
            chat = await factories.chat(api, headers, avatar["id"], title="Вечером")
        await page.goto(f"/avatars/{avatar['id']}/chats/{chat['id']}")
        await expect(page.locator("#messages strong")).to_have_text("Вера")
        assert await background(page) == DARK_BACKGROUND
        await shot(page, "chat-dark")
    finally:
        await context.close()


async def test_toasts_sit_bottom_right_and_go_on_navigation(page, app: App) -> None:  # type: ignore[no-untyped-def]
    await signup(page)
    toast = page.locator(".fh-toast").first
    await expect(toast).to_contain_text("Welcome to Bishop")
    await expect(toast).not_to_contain_text("login is successful")
    box = await toast.bounding_box()
    header = await page.locator("header.top").bounding_box()
    viewport = page.viewport_size
    assert box and header and viewport
    assert box["y"] > header["y"] + header["height"]  # never over the header and Sign Out
    assert box["x"] + box["width"] > viewport["width"] - 40
    assert box["y"] + box["height"] > viewport["height"] - 40
    await toast.click()
    await expect(page.locator(".fh-toast")).to_have_count(0)

    await page.fill("#name", "Тост")
    await page.click("text=Create avatar")
    await expect(page.locator(".fh-toast")).to_have_count(1)
    await page.click("#avatar-list >> text=Тост")
    await expect(page.locator("h1")).to_contain_text("Тост")
    await expect(page.locator(".fh-toast")).to_have_count(0)  # the list's toast stayed there


async def test_skip_link_and_focus_after_navigation(page, app: App) -> None:  # type: ignore[no-untyped-def]
    await signup(page)
    await page.fill("#name", "Фокус")
    await page.click("text=Create avatar")
    await page.goto("/avatars")
    await page.keyboard.press("Tab")
    skip = page.locator("#skip-link")
    await expect(skip).to_be_focused()
    assert (await skip.bounding_box() or {}).get("y", -1) >= 0  # shown when focused
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()

    await page.click("#avatar-list >> text=Фокус")
    heading = page.locator("#main h1")
    await expect(heading).to_contain_text("Фокус")
    await expect(heading).to_be_focused()


async def test_an_avatars_pages_take_its_language(page, app: App) -> None:  # type: ignore[no-untyped-def]
    await signup(page)
    await page.fill("#name", "Язык")
    await page.click("text=Create avatar")
    assert await page.evaluate("document.documentElement.lang") == "en"
    await page.click("#avatar-list >> text=Язык")
    await expect(page.locator("html")).to_have_attribute("lang", "ru")  # the default language
    await page.go_back()
    await expect(page.locator("html")).to_have_attribute("lang", "en")


async def test_favicon(page, app: App) -> None:  # type: ignore[no-untyped-def]
    icon = await page.request.get(f"{app.url}/favicon.ico")
    assert icon.status == 200
    assert (await icon.body())[:4] == b"\x00\x00\x01\x00"  # an ICO file
    await page.goto("/")
    link = await page.locator("link[rel=icon]").get_attribute("href")
    assert (await page.request.get(f"{app.url}{link}")).status == 200


async def test_api_docs_work_offline(page, app: App) -> None:  # type: ignore[no-untyped-def]
    hosts = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).hostname))
    await page.goto(f"{app.api}/docs")
    await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert await page.locator(".swagger-ui .opblock").count() > 20
    await expect(page.locator(".swagger-ui")).to_contain_text(re.compile("/api/v1/users/signup"))
    assert hosts == {urlparse(app.api).hostname}  # nothing from a CDN
