"""ml-sound with the backend, over the bus: a voice sample is checked, a reply gets a dub."""

import asyncio
import io
import uuid
import wave
from collections.abc import AsyncIterator

import httpx
import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_sound import worker as sound_worker
from bishop_sound.settings import SoundSettings

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack
from tests.sound import media
from tests.support.sse import read_events


@pytest.fixture
async def sound_running(stack: Stack, tts_settings: dict) -> AsyncIterator[SoundSettings]:
    settings = SoundSettings(
        _env_file=None,
        bus_url=stack.settings.bus_url,
        storage_url=stack.settings.resolved_storage_url,
        **tts_settings,
    )
    task = asyncio.create_task(sound_worker.run(settings, group=f"ml-sound-{uuid.uuid4().hex[:6]}"))
    yield settings
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_voice_sample_checked_and_reply_dubbed(
    client: httpx.AsyncClient, stack: Stack, sound_running: SoundSettings, tmp_path
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers, language="ru"))["id"]
    speech = media.speech_wav(tmp_path / "voice.wav")
    ogg = media.encode(speech, tmp_path / "voice.ogg")
    good = await factories.upload(
        client, headers, aid, [("voice.ogg", ogg.read_bytes())], "voice_synthesis"
    )
    short = await factories.upload(
        client,
        headers,
        aid,
        [("short.wav", media.speech_wav(tmp_path / "s.wav", "Да.").read_bytes())],
        "voice_synthesis",
    )
    materials = await until(
        client,
        f"/avatars/{aid}/train/materials",
        headers,
        lambda ms: {m["status"] for m in ms} == {"processed", "failed"},
        timeout=60,
    )
    status = {m["id"]: (m["status"], m["status_detail"]) for m in materials}
    assert status[good.json()[0]["id"]] == ("processed", None)
    assert status[short.json()[0]["id"]][0] == "failed"
    assert "at least 3 s" in status[short.json()[0]["id"]][1]

    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    reply_id = (
        await client.post(msgs, json={"message": "Расскажи об импульсе"}, headers=headers)
    ).json()["response_id"]
    stream = asyncio.create_task(read_events(client, f"{msgs}/{reply_id}/response/stream", headers))
    await asyncio.sleep(0.3)
    text = "Импульс — это произведение массы на скорость. Он сохраняется. Это важно!"
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text=text)
    )

    events = await asyncio.wait_for(stream, 120)
    kinds = [k for k, _ in events]
    assert kinds[0] == "text" and kinds[-1] == "dub", kinds
    chunks = [d for k, d in events if k == "dub_chunk"]
    assert [c["index"] for c in chunks] == [0, 1, 2]
    first = await client.get(chunks[0]["url"].removeprefix("/api/v1"), headers=headers)
    assert first.status_code == 200 and first.headers["content-type"] == "audio/wav"

    dub = await client.get(f"{msgs}/{reply_id}/response/dub/", headers=headers)
    assert dub.status_code == 200
    assert dub.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(dub.content)) as parsed:
        assert parsed.getsampwidth() == 2 and parsed.getnchannels() == 1
        assert parsed.getnframes() > parsed.getframerate()  # over a second of speech
    reply = (await client.get(f"{msgs}/{reply_id}/response", headers=headers)).json()
    assert reply["dub_status"] == "ready"
    assert reply["dub_voice"]
