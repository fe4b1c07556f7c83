"""Another site cannot act with a signed-in user's cookie, a cookie copied before sign-out is
worthless after it, and private pages are neither framed nor kept in the browser's cache."""

import re
import uuid

import httpx
from bishop_frontend.app import create_app
from bishop_frontend.settings import FrontendSettings
from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.factories import PASSWORD
from tests.frontend.conftest import App
from tests.frontend.test_browser import sign_out, signup
from tests.support.servers import serve_app


def _attacker(target: str) -> Starlette:
    """A page on another origin of the same host (so SameSite=Lax still sends the cookie)."""

    async def page(_request) -> HTMLResponse:  # type: ignore[no-untyped-def]
        return HTMLResponse(
            f"""<form id="f" method="post" action="{target}/avatars">
                <input name="name" value="Planted"></form>
                <script>document.getElementById('f').submit()</script>"""
        )

    return Starlette(routes=[Route("/", page)])


async def _avatar_names(page, app: App) -> list[str]:  # type: ignore[no-untyped-def]
    await page.goto("/avatars")
    return await page.locator("#avatar-list a").all_inner_texts()


async def test_another_site_cannot_post_or_delete_with_the_users_cookie(page, app: App) -> None:  # type: ignore[no-untyped-def]
    await signup(page, "Victim")
    await page.fill("#name", "Mine")
    await page.click("text=Create avatar")
    await expect(page.locator("#avatar-list")).to_contain_text("Mine")
    href = await page.locator("#avatar-list a", has_text="Mine").get_attribute("href")

    async with serve_app(_attacker(app.url)) as evil:
        async with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/avatars")
        ) as posted:
            await page.goto(evil)
        assert (await posted.value).status == 403

        # The same cookie, with a foreign Origin and no token, or with no token at all.
        forged = await page.request.delete(href, headers={"Origin": evil})
        assert forged.status == 403
        tokenless = await page.request.delete(href)
        assert tokenless.status == 403

    assert await _avatar_names(page, app) == ["Mine"]
    # Bishop's own page still works: its requests carry the token.
    await page.click("#avatar-list >> text=Mine")
    page.on("dialog", lambda dialog: dialog.accept())
    await page.click("text=Delete")
    await page.wait_for_url("**/avatars")
    assert await _avatar_names(page, app) == []


async def test_a_cookie_copied_before_sign_out_is_refused_after_it(browser, app: App) -> None:  # type: ignore[no-untyped-def]
    context = await browser.new_context(base_url=app.url)
    page = await context.new_page()
    await signup(page, "Careful")
    private = await page.goto("/avatars")
    assert private is not None and private.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in private.headers["content-security-policy"]
    assert private.headers["x-content-type-options"] == "nosniff"
    copied = await context.cookies()
    session = next(c for c in copied if c["name"] == "session_")
    assert session["httpOnly"] and session["sameSite"] == "Lax"

    await sign_out(page)
    await page.go_back()  # not stored: asked again, and the session is gone
    await expect(page).to_have_url(re.compile(r".*/login$"))

    thief = await browser.new_context(base_url=app.url)
    await thief.add_cookies(copied)
    stolen = await thief.new_page()
    await stolen.goto("/avatars")
    await expect(stolen).to_have_url(re.compile(r".*/login$"))
    await thief.close()
    await context.close()


async def test_session_cookie_is_secure_in_production_and_lives_as_long_as_the_token(
    app: App, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings = FrontendSettings(
        _env_file=None,
        environment="production",
        api_url=app.api,
        session_secret=uuid.uuid4().hex * 2,
        data_dir=tmp_path,
        access_token_expire_minutes=90,
    )
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as web:
        cookie = (await web.get("/login")).headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "max-age=5400" in cookie


async def test_sign_in_from_a_form_posted_elsewhere_is_refused(app: App) -> None:
    email = f"csrf-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=app.api + "/api/v1") as api:
        await api.post("/users/signup", json={"email": email, "password": PASSWORD})
    async with httpx.AsyncClient(base_url=app.url) as web:
        await web.get("/login")
        refused = await web.post(
            "/login",
            data={"email": email, "password": PASSWORD},
            headers={"Origin": "http://elsewhere.example"},
        )
        assert refused.status_code == 403
