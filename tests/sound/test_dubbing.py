"""The dubbing path on each offline backend: sample -> conditioning (cached) -> speech -> events."""

import asyncio
import io
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from bishop_contracts import events as ev
from bishop_contracts.layout import compressed_dub_key
from bishop_contracts.topics import Topic
from bishop_infra.audio import decode
from bishop_infra.bus import bus_from_url
from bishop_infra.storage import storage_from_url
from bishop_sound import dubbing
from bishop_sound import worker as sound_worker
from bishop_sound.audio import mp3_bytes, read_wav
from bishop_sound.dubbing import Dubber
from bishop_sound.settings import SoundSettings

from tests.sound import media
from tests.support.probe import BusProbe

FIVE_SENTENCES = "Первое предложение. Второе предложение! Третье? Четвёртое, с запятой. И пятое."


class Harness:
    def __init__(self, settings: SoundSettings, probe: BusProbe) -> None:
        self.settings = settings
        self.probe = probe
        self.storage = storage_from_url(settings.resolved_storage_url)
        self.prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"

    def dubber(self) -> Dubber:
        return sound_worker.build(self.settings, group=f"unused-{uuid.uuid4().hex[:6]}")

    async def voice(self, path: Path) -> str:
        key = f"{self.prefix}audio/{uuid.uuid4()}{path.suffix}"
        await self.storage.put_bytes(key, path.read_bytes(), "audio/wav")
        return key

    def request(self, text: str, voices: list[str]) -> ev.SoundInference:
        message_id = uuid.uuid4()
        return ev.SoundInference(
            storage_url=f"{self.prefix}dubs/{message_id}.wav",
            base_voice_url=voices[0] if voices else None,
            voice_urls=voices,
            message_id=message_id,
            text=text,
            language="ru",
        )

    async def outcome(self, request: ev.SoundInference) -> ev.Event:
        return await self.probe.wait_for(
            lambda e: (
                e.event in ("save_response_dub", "dub_failed")
                and e.message_id == request.message_id
            ),
            timeout=60,
        )


async def _harness(tmp_path: Path, tts: dict) -> AsyncIterator[Harness]:
    settings = SoundSettings(
        _env_file=None,
        bus_url=f"memory://sound-{uuid.uuid4().hex[:6]}",
        storage_url=f"file://{tmp_path}/objects",
        **tts,
    )
    bus = bus_from_url(settings.bus_url)
    probe = BusProbe(bus, topics=(Topic.SAVE_RESPONSE_DUB, Topic.MATERIAL_STATUS))
    await bus.start()
    yield Harness(settings, probe)
    await bus.stop()


@pytest.fixture
async def harness(tmp_path: Path, tts_settings: dict) -> AsyncIterator[Harness]:
    """Each offline backend."""
    async for h in _harness(tmp_path, tts_settings):
        yield h


@pytest.fixture
async def cloning(tmp_path: Path, tiny_xtts_dir: Path) -> AsyncIterator[Harness]:
    """The backend that clones voices (XTTS)."""
    tts = {"tts_backend": "xtts", "xtts_model_dir": tiny_xtts_dir, "tts_device": "cpu"}
    async for h in _harness(tmp_path, tts):
        yield h


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return media.speech_wav(tmp_path_factory.mktemp("speech") / "voice.wav")


async def test_sentences_are_announced_then_the_whole_dub(harness: Harness, speech: Path) -> None:
    dubber = harness.dubber()
    request = harness.request(FIVE_SENTENCES, [await harness.voice(speech)])
    await dubber.dub(request)
    done = await harness.outcome(request)
    assert isinstance(done, ev.SaveResponseDub)
    chunks = harness.probe.all(
        lambda e: e.event == "dub_chunk" and e.message_id == request.message_id
    )
    assert [c.index for c in chunks] == [0, 1, 2, 3, 4]
    assert chunks[1].text == "Второе предложение!"

    data = await harness.storage.get_bytes(done.dub_url)
    with wave.open(io.BytesIO(data)) as parsed:
        assert parsed.getsampwidth() == 2 and parsed.getnchannels() == 1
        assert parsed.getframerate() == dubber.synth.sample_rate
        assert parsed.getnframes() > 0
    audio, _ = read_wav(data)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    first, _ = read_wav(await harness.storage.get_bytes(chunks[0].chunk_url))
    assert 0 < len(first) < len(audio)
    if dubber.synth.clones_voices:
        assert done.voice == "cloned from the avatar's voice sample"
    else:
        assert "not a cloned voice" in done.voice


async def test_the_dub_and_each_chunk_are_also_stored_as_mp3(
    harness: Harness, tmp_path: Path
) -> None:
    request = harness.request(FIVE_SENTENCES, [])
    await harness.dubber().dub(request)
    done = await harness.outcome(request)
    assert isinstance(done, ev.SaveResponseDub)
    chunks = harness.probe.all(
        lambda e: e.event == "dub_chunk" and e.message_id == request.message_id
    )
    assert len(chunks) == 5
    for key in [done.dub_url] + [c.chunk_url for c in chunks]:
        wav = await harness.storage.get_bytes(key)
        mp3 = await harness.storage.get_bytes(compressed_dub_key(key))
        # An MPEG audio frame header (11 sync bits) opens the file: no container around it.
        assert mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0
        assert len(mp3) < len(wav) / 2
        audio, rate = read_wav(wav)
        info = soundfile.info(io.BytesIO(mp3))
        assert info.format == "MP3" and info.samplerate == rate
        assert abs(info.duration - len(audio) / rate) < 0.03
    # Another decoder (ffmpeg, as the browser's) reads it as about as long and as loud.
    (tmp_path / "dub.mp3").write_bytes(
        await harness.storage.get_bytes(compressed_dub_key(done.dub_url))
    )
    audio, rate = read_wav(await harness.storage.get_bytes(done.dub_url))
    decoded = decode(tmp_path / "dub.mp3", rate)
    assert abs(len(decoded) - len(audio)) / rate < 0.1
    loudness = np.sqrt(np.mean(decoded**2)) / np.sqrt(np.mean(audio**2))
    assert 0.7 < loudness < 1.3


def test_mp3_at_a_rate_mp3_lacks_keeps_the_length() -> None:
    tone = np.sin(np.arange(17_000) * 2 * np.pi * 220 / 17_000).astype(np.float32) * 0.5
    info = soundfile.info(io.BytesIO(mp3_bytes(tone, 17_000)))
    assert info.samplerate == 22050 and abs(info.duration - 1.0) < 0.01


@pytest.mark.parametrize("tts_settings", ["demo"], indirect=True)
async def test_a_dub_without_an_encoder_is_still_a_dub(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(audio: np.ndarray, rate: int) -> bytes:
        raise RuntimeError("Error opening: Format not recognised")

    monkeypatch.setattr(dubbing, "mp3_bytes", broken)
    request = harness.request("Только WAV.", [])
    await harness.dubber().dub(request)
    assert isinstance(await harness.outcome(request), ev.SaveResponseDub)
    assert await harness.storage.exists(request.storage_url)
    assert not await harness.storage.exists(compressed_dub_key(request.storage_url))


async def test_conditioning_is_computed_once_per_voice(cloning: Harness, speech: Path) -> None:
    harness = cloning
    dubber = harness.dubber()
    voice = await harness.voice(speech)
    for text in ("Первое сообщение.", "Второе сообщение."):
        request = harness.request(text, [voice])
        await dubber.dub(request)
        assert isinstance(await harness.outcome(request), ev.SaveResponseDub)
    assert dubber.conditionings_computed == 1
    # A restarted worker finds the conditioning in object storage.
    restarted = harness.dubber()
    request = harness.request("Третье сообщение.", [voice])
    await restarted.dub(request)
    assert isinstance(await harness.outcome(request), ev.SaveResponseDub)
    assert restarted.conditionings_computed == 0
    # Another set of samples is another voice version.
    second = await harness.voice(speech)
    request = harness.request("Четвёртое.", [second, voice])
    await dubber.dub(request)
    await harness.outcome(request)
    assert dubber.conditionings_computed == 2


@pytest.mark.parametrize("fallback", [True, False])
async def test_missing_or_corrupt_sample(cloning: Harness, tmp_path: Path, fallback: bool) -> None:
    harness = cloning
    harness.settings.fallback_to_preset_voice = fallback
    dubber = harness.dubber()
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    for voices, reason in (
        ([f"{harness.prefix}audio/{uuid.uuid4()}.wav"], "the voice sample is missing"),
        ([await harness.voice(corrupt)], "could not be decoded"),
    ):
        request = harness.request("Проверка голоса.", voices)
        await dubber.dub(request)
        done = await harness.outcome(request)
        if fallback:
            assert isinstance(done, ev.SaveResponseDub)
            assert done.voice.startswith("preset voice:") and reason in done.voice
        else:
            assert isinstance(done, ev.DubFailed)
            assert reason in done.reason


async def test_no_sample_uses_the_preset_voice(harness: Harness) -> None:
    dubber = harness.dubber()
    request = harness.request("Без образца голоса.", [])
    await dubber.dub(request)
    done = await harness.outcome(request)
    assert isinstance(done, ev.SaveResponseDub)
    if dubber.synth.clones_voices:
        assert done.voice == "preset voice: the avatar has no voice sample"


async def test_empty_text_fails_clearly(harness: Harness) -> None:
    request = harness.request("   ", [])
    await harness.dubber().dub(request)
    done = await harness.outcome(request)
    assert isinstance(done, ev.DubFailed)
    assert done.reason == "the reply text is empty"


async def test_redelivered_request_is_not_synthesised_again(harness: Harness) -> None:
    dubber = harness.dubber()
    request = harness.request("Один раз.", [])
    await dubber.dub(request)
    first = await harness.outcome(request)
    stored = await harness.storage.get_bytes(first.dub_url)
    await dubber.dub(request)
    await asyncio.sleep(0.1)
    finals = harness.probe.all(
        lambda e: e.event == "save_response_dub" and e.message_id == request.message_id
    )
    assert {e.event_id for e in finals} == {
        first.event_id
    }  # same event again: the backend drops it
    assert await harness.storage.get_bytes(first.dub_url) == stored


async def test_malformed_events_do_not_stop_the_worker(harness: Harness) -> None:
    group = f"ml-sound-{uuid.uuid4().hex[:6]}"
    task = asyncio.create_task(sound_worker.run(harness.settings, group=group))
    await asyncio.sleep(0.2)
    try:
        raw = harness.probe.bus
        for value in (
            b"garbage",
            b'{"event": "sound_inference", "text": "x"}',
            b'{"event": "sound_inference"}',
        ):
            await harness.probe.publish_raw(Topic.SOUND_INFERENCE, value)
        request = harness.request("Всё ещё работаю.", [])
        await raw.publish(Topic.SOUND_INFERENCE, request)
        assert isinstance(await harness.outcome(request), ev.SaveResponseDub)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_unspoken_language_falls_back_and_the_reply_says_so(cloning: Harness) -> None:
    request = cloning.request("Hallo Welt.", []).model_copy(update={"language": "de"})
    await cloning.dubber().dub(request)
    done = await cloning.outcome(request)
    assert isinstance(done, ev.SaveResponseDub)  # never a failed dub for the language
    assert done.voice is not None and "this voice does not speak Deutsch" in done.voice
    assert await cloning.storage.exists(request.storage_url)
