import asyncio
import uuid

import httpx
from bishop_sound import worker as sound_worker
from bishop_sound.settings import SoundSettings
from bishop_text import worker as text_worker
from bishop_text.settings import TextSettings

from tests import factories
from tests.conftest import Stack


async def test_health_check_reports_dependencies_and_workers(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    # No worker is running yet: the check says so, with 503, instead of "ok".
    first = await client.get("/utils/health-check/")
    assert first.status_code == 503 and first.headers["retry-after"]
    body = first.json()
    assert body["status"] == "unavailable" and set(body["down"]) == {"ml-text", "ml-sound"}
    assert body["dependencies"]["database"]["status"] == "ok" and body["database"] == "ok"
    assert {body["dependencies"][d]["status"] for d in ("storage", "state", "bus")} == {"ok"}
    assert body["workers"]["ml-text"]["status"] == "down"

    settings = TextSettings(
        _env_file=None,
        bus_url=stack.settings.bus_url,
        state_url=stack.settings.state_url,
        storage_url=stack.settings.resolved_storage_url,
    )
    sound = SoundSettings(
        _env_file=None,
        bus_url=stack.settings.bus_url,
        storage_url=stack.settings.resolved_storage_url,
    )
    run = uuid.uuid4().hex[:6]
    workers = [
        asyncio.create_task(text_worker.run(settings, group=f"ml-text-{run}")),
        asyncio.create_task(sound_worker.run(sound, group=f"ml-sound-{run}")),
    ]
    try:
        async with asyncio.timeout(20):
            while True:
                answer = await client.get("/utils/health-check")
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.2)
        body = answer.json()
        assert body["status"] == "ok" and body["down"] == []
        assert body["workers"]["ml-text"]["status"] == "ok"
        assert body["workers"]["ml-sound"]["worker"] == "ml-sound"
        # The browser app learns from the heartbeats whether replies come from the demo model.
        assert (await client.get("/utils/profile")).status_code == 401
        headers = await factories.user(client)
        profile = (await client.get("/utils/profile", headers=headers)).json()
        assert profile == {
            "text_profile": settings.profile,
            "clones_voices": sound.tts_backend != "demo",
            "demo": settings.profile == "demo",
        }
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
