"""The whole app in embedded mode (backend, both workers, browser app) and a headless Chromium."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bishop_frontend.app import create_app as create_frontend
from bishop_frontend.settings import FrontendSettings
from bishop_sound import worker as sound_worker
from bishop_sound.settings import SoundSettings
from bishop_text import worker as text_worker
from bishop_text.settings import TextSettings

from tests.conftest import serve, stack_settings
from tests.support.servers import serve_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@dataclass
class App:
    url: str
    api: str


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    root = tmp_path_factory.mktemp("embedded-app")
    settings = stack_settings("embedded", root, None)
    shared = {
        "_env_file": None,
        "bus_url": settings.bus_url,
        "state_url": settings.state_url,
        "storage_url": settings.resolved_storage_url,
    }
    text = TextSettings(
        **shared,
        profile="demo",
        cache_dir=root / "text-cache",
        train_max_steps=6,
        max_new_tokens=12,
        min_new_tokens=6,
        temperature=0.0,
        batch_size=8,
    )
    sound = SoundSettings(**shared, tts_backend="demo")
    group = uuid.uuid4().hex[:6]
    workers = [
        asyncio.create_task(text_worker.run(text, group=f"ml-text-{group}")),
        asyncio.create_task(sound_worker.run(sound, group=f"ml-sound-{group}")),
    ]
    async with serve(settings) as api:
        frontend = FrontendSettings(
            _env_file=None,
            api_url=api,
            session_secret=uuid.uuid4().hex * 2,
            data_dir=root,
            max_upload_bytes=settings.max_upload_bytes,
        )
        async with serve_app(create_frontend(frontend)) as url:
            yield App(url=url, api=api)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser, app: App):  # type: ignore[no-untyped-def]
    context = await browser.new_context(base_url=app.url, viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    yield page
    await context.close()


async def shot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
