"""Files come whole or in part (`Range`), so a player can show a length and seek."""

import asyncio
import io

import httpx
import numpy as np
import soundfile
from bishop_contracts import events as ev
from bishop_contracts.layout import compressed_dub_key
from bishop_contracts.topics import Topic
from bishop_infra.storage import storage_from_url

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack


async def test_a_download_answers_byte_ranges(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    body = factories.TEXT * 50
    material = (await factories.upload(client, headers, aid, [("notes.txt", body)])).json()[0]
    url = f"/avatars/{aid}/train/materials/{material['id']}/download"

    whole = await client.get(url, headers=headers)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(body)

    middle = await client.get(url, headers={**headers, "Range": "bytes=100-199"})
    assert middle.status_code == 206 and middle.content == body[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{len(body)}"
    assert middle.headers["content-length"] == "100"
    tail = await client.get(url, headers={**headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == body[-10:]
    rest = await client.get(url, headers={**headers, "Range": f"bytes={len(body) - 3}-"})
    assert rest.content == body[-3:]

    outside = await client.get(url, headers={**headers, "Range": f"bytes={len(body)}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(body)}"
    # Several ranges or another unit: the whole file, as RFC 9110 allows.
    for ignored in ("bytes=0-1,5-6", "pages=1-2", "garbage"):
        answer = await client.get(url, headers={**headers, "Range": ignored})
        assert answer.status_code == 200 and answer.content == body


def _mp3(seconds: float) -> bytes:
    rate = 22050
    tone = np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 220 / rate) * 0.3
    buffer = io.BytesIO()
    soundfile.write(buffer, tone.astype(np.float32), rate, format="MP3")
    return buffer.getvalue()


async def test_a_dub_and_its_chunks_come_as_mp3_too(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    reply_id = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()[
        "response_id"
    ]
    dub, mp3 = f"{msgs}/{reply_id}/response/dub/", f"{msgs}/{reply_id}/response/dub/?format=mp3"
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text="Здравствуйте")
    )
    request = await stack.probe.wait_for(
        lambda e: e.event == "sound_inference" and str(e.message_id) == reply_id
    )
    for early in (mp3, f"{msgs}/{reply_id}/response/dub/0?format=mp3"):  # not voiced yet
        assert (await client.get(early, headers=headers)).status_code == 404

    storage = storage_from_url(stack.settings.resolved_storage_url)
    wav_key = request.storage_url
    chunk_wav = f"{wav_key.removesuffix('.wav')}/0.wav"
    whole, sentence, wav = _mp3(2.0), _mp3(0.5), b"RIFF" + b"\0" * 400
    await storage.put_bytes(chunk_wav, wav, "audio/wav")
    await storage.put_bytes(compressed_dub_key(chunk_wav), sentence, "audio/mpeg")
    await storage.put_bytes(wav_key, wav, "audio/wav")
    await storage.put_bytes(compressed_dub_key(wav_key), whole, "audio/mpeg")
    await stack.probe.publish(
        Topic.SAVE_RESPONSE_DUB, ev.DubChunk(message_id=reply_id, index=0, chunk_url=chunk_wav)
    )
    await stack.probe.publish(
        Topic.SAVE_RESPONSE_DUB, ev.SaveResponseDub(message_id=reply_id, dub_url=wav_key)
    )
    await until(
        client, f"{msgs}/{reply_id}/response", headers, lambda r: r["dub_status"] == "ready"
    )

    answer = await client.get(mp3, headers=headers)
    assert answer.status_code == 200 and answer.content == whole
    assert answer.headers["content-type"] == "audio/mpeg"
    assert answer.headers["accept-ranges"] == "bytes"
    assert int(answer.headers["content-length"]) == len(whole)
    part = await client.get(mp3, headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert part.headers["content-type"] == "audio/mpeg"
    outside = await client.get(mp3, headers={**headers, "Range": f"bytes={len(whole)}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(whole)}"
    # The thesis's route is unchanged: the WAV, and `format=wav` says the same.
    for thesis in (dub, f"{dub}?format=wav"):
        answer = await client.get(thesis, headers=headers)
        assert answer.status_code == 200 and answer.content == wav
        assert answer.headers["content-type"] == "audio/wav"
    assert (await client.get(f"{dub}?format=flac", headers=headers)).status_code == 422

    chunk = f"{msgs}/{reply_id}/response/dub/0?format=mp3"
    answer = await client.get(chunk, headers=headers)
    assert answer.status_code == 200 and answer.content == sentence
    assert answer.headers["content-type"] == "audio/mpeg"
    assert int(answer.headers["content-length"]) == len(sentence)
    part = await client.get(chunk, headers={**headers, "Range": "bytes=-10"})
    assert part.status_code == 206 and part.content == sentence[-10:]
    assert (await client.get(f"{msgs}/{reply_id}/response/dub/0", headers=headers)).content == wav

    # A chunk voiced before MP3s (a WAV only): 404 for the MP3, the WAV still plays.
    old_wav = f"{wav_key.removesuffix('.wav')}/1.wav"
    await storage.put_bytes(old_wav, wav, "audio/wav")
    await stack.probe.publish(
        Topic.SAVE_RESPONSE_DUB, ev.DubChunk(message_id=reply_id, index=1, chunk_url=old_wav)
    )
    old = f"{msgs}/{reply_id}/response/dub/1"
    async with asyncio.timeout(15):
        while (await client.get(old, headers=headers)).status_code != 200:
            await asyncio.sleep(0.05)
    assert (await client.get(f"{old}?format=mp3", headers=headers)).status_code == 404

    # Another user sees none of it.
    other = await factories.user(client)
    for url in (mp3, chunk):
        assert (await client.get(url, headers=other)).status_code == 404
