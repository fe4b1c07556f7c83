"""Every user flow in a real headless Chromium against the app in embedded mode."""

import io
import math
import re
import shutil
import uuid
import wave
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.factories import PASSWORD
from tests.frontend.conftest import App, shot
from tests.sound import media
from tests.text.corpus import lecture

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def signup(page, name: str = "Анна Петрова") -> str:  # type: ignore[no-untyped-def]
    email = f"web-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/signup")
    await page.fill("#email", email)
    await page.fill("#full_name", name)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/avatars")
    return email


async def sign_out(page) -> None:  # type: ignore[no-untyped-def]
    await page.click("details.account > summary")  # the account menu
    await page.click("text=Sign Out")
    await page.wait_for_url(re.compile(r".*/$"))  # a POST, then the landing page


async def test_signup_to_a_voiced_reply(page, app: App, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    await page.goto("/")
    await expect(page.get_by_role("link", name="Signup").first).to_be_visible()
    await shot(page, "01-landing")
    email = await signup(page)
    await expect(page.locator("header")).to_contain_text(email)
    await expect(page.locator(".fh-toast")).to_contain_text("Your account is ready")

    await page.fill("#name", "Анна")
    await page.click("text=Create avatar")
    await expect(page.locator(".fh-toast").last).to_contain_text("Avatar created successfully!")
    await page.click("#avatar-list >> text=Анна")
    await expect(page.locator("h1")).to_have_text("Анна")
    await page.fill("#description", "Учитель физики")
    await page.click("text=Save persona")
    await expect(page.locator(".fh-toast").last).to_contain_text("Saved.")
    await shot(page, "02-avatar")

    await page.click("text=Train")
    lecture_file = tmp_path / "lecture.txt"
    lecture_file.write_text(lecture(80))
    await page.set_input_files("#file", [str(lecture_file)])
    await page.click("#upload-form button[type=submit]")
    await expect(page.locator("#materials")).to_contain_text("lecture.txt")
    href = await page.locator("#materials a", has_text="lecture.txt").get_attribute("href")
    assert (await (await page.request.get(href)).body()) == lecture_file.read_bytes()
    voice = media.speech_wav(tmp_path / "voice.wav")
    await page.set_input_files("#file", [str(voice)])
    await page.check(".upload-row:has-text('voice.wav') input[value=voice_synthesis]")
    await page.click("#upload-form button[type=submit]")
    await expect(page.locator("#materials")).to_contain_text("voice.wav")
    sample = page.locator("#materials audio")  # the voice sample plays on the Train page
    await expect(sample).to_have_count(1)
    sample_src = await sample.get_attribute("src")
    played = await page.request.get(sample_src, headers={"Range": "bytes=0-3"})
    assert played.status == 206 and played.headers["content-type"] == "audio/wav"
    assert await played.body() == b"RIFF"
    await expect(page.locator("#materials .badge.processed")).to_have_count(2, timeout=60_000)
    await page.click("text=Start Training")
    await expect(page.locator("#versions")).to_contain_text("Version 1", timeout=120_000)
    await expect(page.locator("#train-status")).to_contain_text("Trained (v1)")
    await shot(page, "03-train")

    await page.click("text=← Анна")
    await expect(page.locator("h1")).to_have_text("Анна")  # the avatar page, not the Train page
    await page.click("a.button:text-is('Chat')")
    await page.fill("#title", "Физика")
    await page.click("text=Create chat")
    await page.click("#chat-list >> text=Физика")
    await expect(page.locator("h1")).to_contain_text("Физика")
    await page.fill("#message", "Что такое импульс?")
    await page.press("#message", "Enter")
    await expect(page.locator(".msg.user .text")).to_have_text("Что такое импульс?")
    reply = page.locator(".msg.avatar").last
    audio = reply.locator("audio")
    await expect(audio).to_have_count(1, timeout=120_000)
    text = (await reply.locator(".text").inner_text()).strip()
    assert text and "typing" not in text
    await expect(reply).to_contain_text("not a cloned voice")  # the demo voice says what it is
    # The MP3 first, the WAV (the thesis's format) as the fallback; both relayed whole or in part.
    sources = await audio.locator("source").all()
    assert [await s.get_attribute("type") for s in sources] == ["audio/mpeg", "audio/wav"]
    mp3_src, wav_src = [await s.get_attribute("src") for s in sources]
    response = await page.request.get(wav_src)
    assert response.status == 200 and response.headers["content-type"] == "audio/wav"
    wav = await response.body()
    assert wav[:4] == b"RIFF"
    assert int(response.headers["content-length"]) == len(wav)
    response = await page.request.get(mp3_src)
    assert response.status == 200 and response.headers["content-type"] == "audio/mpeg"
    mp3 = await response.body()
    assert int(response.headers["content-length"]) == len(mp3) and len(mp3) < len(wav) / 2
    assert response.headers["accept-ranges"] == "bytes"
    part = await page.request.get(mp3_src, headers={"Range": "bytes=0-99"})
    assert part.status == 206 and await part.body() == mp3[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(mp3)}"
    played: list[int] = []
    page.on("response", lambda r: played.append(r.status) if r.url.endswith(mp3_src) else None)
    # The player knows the length and can seek: a seek to the middle lands in the middle.
    duration = await audio.evaluate(
        """a => new Promise(done => {
            if (a.readyState >= 1) return done(a.duration);
            a.addEventListener('loadedmetadata', () => done(a.duration), {once: true});
            a.preload = 'auto'; a.load();
        })"""
    )
    assert math.isfinite(duration) and duration > 0
    with wave.open(io.BytesIO(wav)) as parsed:  # the MP3 is as long as the WAV
        assert abs(duration - parsed.getnframes() / parsed.getframerate()) < 0.1
    landed = await audio.evaluate(
        """a => new Promise(done => {
            a.addEventListener('seeked', () => done(a.currentTime), {once: true});
            a.currentTime = a.duration / 2;
        })"""
    )
    assert abs(landed - duration / 2) < 0.05 * duration + 0.05
    assert (await audio.evaluate("a => a.currentSrc")).endswith(mp3_src)  # it plays the MP3
    assert 206 in played  # and reads it in ranges
    # A reply voiced before MP3s (its MP3 is a 404) plays the WAV of the same markup.
    no_mp3 = re.sub(r"/replies/[^/]+/", f"/replies/{uuid.uuid4()}/", mp3_src)
    assert (await page.request.get(no_mp3)).status == 404
    fallback = await page.evaluate(
        """([first, second]) => new Promise(done => {
            const a = document.createElement('audio');
            for (const [src, type] of [[first, 'audio/mpeg'], [second, 'audio/wav']]) {
                const s = document.createElement('source');
                s.src = src; s.type = type; a.append(s);
            }
            a.addEventListener('loadedmetadata', () => done([a.currentSrc, a.duration]));
            a.preload = 'metadata'; a.load();
        })""",
        [no_mp3, wav_src],
    )
    assert fallback[0].endswith(wav_src) and abs(fallback[1] - duration) < 0.1
    chat_shot = await shot(page, "04-chat")
    shutil.copy(chat_shot, DOCS / "chat-page.png")

    # One full page load after login: navigation above was htmx swaps of #main.
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1


async def test_wrong_password_and_duplicate_signup(page, app: App) -> None:  # type: ignore[no-untyped-def]
    email = await signup(page)
    await sign_out(page)
    await page.goto("/login")
    await page.fill("#email", email)
    await page.fill("#password", "wrong-password")
    await page.click("button[type=submit]")
    await expect(page.locator("#form-errors")).to_have_text("Incorrect email or password")
    await shot(page, "05-login-error")

    await page.goto("/signup")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#form-errors")).to_have_text(
        "The user with this email already exists in the system"
    )
    await page.fill("#email", "not-an-email@")
    await page.fill("#password", "short")
    await page.evaluate("document.querySelector('form').noValidate = true")
    await page.click("button[type=submit]")
    await expect(page.locator("#form-errors")).to_contain_text(
        "Password must be at least 8 characters"
    )


async def test_rejected_upload_and_another_users_avatar(page, app: App, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    await signup(page, "Owner")
    await page.fill("#name", "Private")
    await page.click("text=Create avatar")
    await page.click("#avatar-list >> text=Private")
    await page.wait_for_url(re.compile(r".*/avatars/[0-9a-f-]{36}$"))
    avatar_url = page.url
    await page.click("text=Train")
    fake = tmp_path / "fake.wav"
    fake.write_text("this is text, not audio")
    await page.set_input_files("#file", [str(fake)])
    await page.click("#upload-form button[type=submit]")
    await expect(page.locator(".fh-toast").last).to_contain_text("File upload failed!")
    await expect(page.locator("#materials")).to_contain_text("No materials yet.")

    await sign_out(page)
    await signup(page, "Intruder")
    await page.goto(avatar_url)
    await expect(page.locator("h1")).to_have_text("Not found")
    assert "Private" not in await page.content()
    await shot(page, "06-not-found")


async def test_phone_width_and_keyboard_only(browser, app: App) -> None:  # type: ignore[no-untyped-def]
    email = f"phone-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=app.api + "/api/v1", timeout=60) as api:
        signed_up = await api.post("/users/signup", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    context = await browser.new_context(base_url=app.url, viewport={"width": 375, "height": 740})
    page = await context.new_page()
    await page.goto("/login")
    await expect(page.locator("#email")).to_be_focused()  # the email field has focus on arrival
    await page.keyboard.type(email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/avatars")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.tagName") in ("A", "INPUT", "BUTTON")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing overflows
    await shot(page, "07-phone-avatars")
    await context.close()
