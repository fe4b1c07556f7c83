"""The LLaSA backend on a tiny random-weight model: voice sample -> prompt (transcript and
X-Codec2 codes, kept in storage) -> speech sentence by sentence -> chunks, dub and events."""

import asyncio
import io
import json
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_sound import worker as sound_worker
from bishop_sound.audio import read_wav
from bishop_sound.dubbing import PAUSE_SECONDS
from bishop_sound.synth.llasa import LlasaSynthesizer, prompt_audio, quiet_cut
from transformers.models.xcodec2 import Xcodec2Model

from tests.sound import media, tiny_llasa
from tests.sound.test_dubbing import Harness, _harness
from tests.support.calls import counted

REPLY = (
    "The first sentence is short. The second one asks a question? "
    "A third, with a comma. The fourth is here! And the fifth ends it."
)


@pytest.fixture(scope="module")
def llasa_settings(tmp_path_factory: pytest.TempPathFactory) -> dict:
    models = tiny_llasa.build(tmp_path_factory.mktemp("llasa"))
    # A short prompt and a brisk pace keep the random model's speech (and the test) short.
    return {**models, "llasa_prompt_seconds": 3.0, "llasa_slowest_chars_per_second": 40.0}


@pytest.fixture
async def llasa(tmp_path: Path, llasa_settings: dict) -> AsyncIterator[Harness]:
    async for h in _harness(tmp_path, llasa_settings):
        yield h


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return media.speech_wav(tmp_path_factory.mktemp("speech") / "voice.wav")


def english(harness: Harness, text: str, voices: list[str]) -> ev.SoundInference:
    return harness.request(text, voices).model_copy(update={"language": "en"})


def stored(harness: Harness, pattern: str) -> list[str]:
    """Keys in the harness's local object storage matching `pattern`."""
    root = Path(harness.settings.storage_url.removeprefix("file://"))
    return [str(p.relative_to(root)) for p in root.glob(pattern)]


def frames(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as parsed:
        assert parsed.getsampwidth() == 2 and parsed.getnchannels() == 1
        return parsed.getframerate(), parsed.getnframes()


async def test_a_reply_is_voiced_sentence_by_sentence(
    llasa: Harness, speech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dubber = llasa.dubber()
    synth = dubber.synth
    assert isinstance(synth, LlasaSynthesizer) and synth.speech_tokens == 256
    spoken = counted(monkeypatch, synth, "synthesize")
    decoded = counted(monkeypatch, synth, "decode")
    at_first_chunk: list[int] = []

    async def on_chunk(index: int) -> None:
        if index == 0:
            at_first_chunk.append(len(spoken))

    request = english(llasa, REPLY, [await llasa.voice(speech)])
    await dubber.dub(request, on_chunk=on_chunk)
    done = await llasa.outcome(request)
    assert isinstance(done, ev.SaveResponseDub)
    assert done.voice == "cloned from the avatar's voice sample"
    # The first sentence is out before the second is generated.
    assert at_first_chunk == [1] and len(spoken) == 5

    chunks = llasa.probe.all(
        lambda e: e.event == "dub_chunk" and e.message_id == request.message_id
    )
    assert [c.index for c in chunks] == [0, 1, 2, 3, 4]
    assert chunks[1].text == "The second one asks a question?"
    lengths = []
    for chunk in chunks:
        rate, count = frames(await llasa.storage.get_bytes(chunk.chunk_url))
        least, most = synth.token_bounds(chunk.text)
        assert rate == 16000
        assert least * synth.hop <= count <= most * synth.hop and count % synth.hop == 0
        lengths.append(count)
    # Every sentence's codes are speech codes, after the prompt's own.
    prompt = dubber._voices[next(iter(dubber._voices))]["codes"]
    for (codes,) in decoded:
        assert codes[: len(prompt)] == prompt
        assert all(0 <= c < synth.speech_tokens for c in codes)

    data = await llasa.storage.get_bytes(done.dub_url)
    rate, count = frames(data)
    assert count == sum(lengths) + 4 * int(PAUSE_SECONDS * rate)
    audio, _ = read_wav(data)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


async def test_the_voice_prompt_is_made_once_and_kept_in_storage(
    llasa: Harness, speech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes = counted(monkeypatch, Xcodec2Model, "encode")
    dubber = llasa.dubber()
    voice = await llasa.voice(speech)
    for text in ("First message.", "Second message."):
        request = english(llasa, text, [voice])
        await dubber.dub(request)
        assert isinstance(await llasa.outcome(request), ev.SaveResponseDub)
    assert dubber.conditionings_computed == 1 and len(encodes) == 1

    cached = stored(llasa, f"{llasa.prefix}voice/*.llasa.cond")
    assert len(cached) == 1
    entry = json.loads(await llasa.storage.get_bytes(cached[0]))
    assert isinstance(entry["text"], str) and entry["text"]  # the sample's transcript
    # Three seconds of prompt at 50 tokens a second, cut at a quiet moment.
    assert 100 <= len(entry["codes"]) <= 150

    # A restarted worker loads the prompt: it neither encodes nor transcribes.
    restarted = llasa.dubber()
    request = english(llasa, "Third message.", [voice])
    await restarted.dub(request)
    assert isinstance(await llasa.outcome(request), ev.SaveResponseDub)
    assert restarted.conditionings_computed == 0 and len(encodes) == 1
    assert restarted.synth._asr is None
    assert restarted._voices[next(iter(restarted._voices))] == {
        "codes": entry["codes"],
        "text": entry["text"],
    }

    # A prompt cached by another codec is made again, once.
    await llasa.storage.put_bytes(
        cached[0], json.dumps({**entry, "codec": "another/codec"}).encode(), "application/json"
    )
    again = llasa.dubber()
    for text in ("Fourth message.", "Fifth message."):
        request = english(llasa, text, [voice])
        await again.dub(request)
        assert isinstance(await llasa.outcome(request), ev.SaveResponseDub)
    assert again.conditionings_computed == 1 and len(encodes) == 2


async def test_the_preset_voice_is_one_voice(llasa: Harness) -> None:
    first, second = llasa.dubber(), llasa.dubber()
    for dubber in (first, second):
        request = english(llasa, "No sample here.", [])
        await dubber.dub(request)
        done = await llasa.outcome(request)
        assert isinstance(done, ev.SaveResponseDub)
        assert done.voice == "preset voice: the avatar has no voice sample"
    # Made once per worker, with a fixed seed: the same voice after a restart.
    assert first.synth.preset() is first.synth.preset()
    assert first.synth.preset() == second.synth.preset()
    assert len(first.synth.preset()["codes"]) > 0


async def test_a_language_the_model_does_not_speak_falls_back_and_says_so(
    llasa: Harness,
) -> None:
    request = llasa.request("Привет.", [])  # Russian: not among Llasa-1B-Multilingual's
    await llasa.dubber().dub(request)
    done = await llasa.outcome(request)
    assert isinstance(done, ev.SaveResponseDub)
    assert done.voice is not None
    assert "spoken in English: this voice does not speak Русский" in done.voice


async def test_the_worker_checks_a_sample_and_voices_a_reply_over_the_bus(
    llasa: Harness, speech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes = counted(monkeypatch, Xcodec2Model, "encode")
    voice = await llasa.voice(speech)
    avatar_id = uuid.UUID(llasa.prefix.split("/")[3])

    async def serving() -> asyncio.Task:
        task = asyncio.create_task(
            sound_worker.run(llasa.settings, group=f"ml-sound-{uuid.uuid4().hex[:6]}")
        )
        await asyncio.sleep(0.2)
        return task

    async def stop(task: asyncio.Task) -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    worker = await serving()
    try:
        sample = ev.MaterialUploaded(
            avatar_id=avatar_id,
            material_id=uuid.uuid4(),
            type="voice_synthesis",
            kind="audio",
            url=voice,
            filename="voice.wav",
        )
        await llasa.probe.publish(Topic.MATERIALS, sample)
        checked = await llasa.probe.wait_for(
            lambda e: (
                e.event in ("material_processed", "material_failed")
                and e.material_id == sample.material_id
            ),
            timeout=60,
        )
        assert isinstance(checked, ev.MaterialProcessed) and checked.stats["speech_seconds"] > 3

        request = english(llasa, "Hello there. How are you?", [voice])
        await llasa.probe.publish(Topic.SOUND_INFERENCE, request)
        done = await llasa.outcome(request)
        assert isinstance(done, ev.SaveResponseDub)
    finally:
        await stop(worker)
    chunks = llasa.probe.all(
        lambda e: e.event == "dub_chunk" and e.message_id == request.message_id
    )
    assert [c.index for c in chunks] == [0, 1]
    rate, count = frames(await llasa.storage.get_bytes(done.dub_url))
    assert rate == 16000 and count > 0
    assert len(encodes) == 1

    # The same voice after a restart: the prompt comes from storage.
    worker = await serving()
    try:
        request = english(llasa, "Still the same voice.", [voice])
        await llasa.probe.publish(Topic.SOUND_INFERENCE, request)
        assert isinstance(await llasa.outcome(request), ev.SaveResponseDub)
    finally:
        await stop(worker)
    assert len(encodes) == 1


def test_the_prompt_is_cut_at_a_quiet_moment() -> None:
    rate = 16000
    loud = np.full(rate * 4, 0.5, np.float32)
    loud[int(2.5 * rate) : int(2.6 * rate)] = 0.0  # a pause at 2.5 s
    assert 2.5 * rate < quiet_cut(loud, 3 * rate, rate) <= 2.6 * rate
    pieces = [loud, np.full(rate * 2, 0.5, np.float32)]
    audio = prompt_audio(pieces, rate, 3.0)
    assert len(audio) <= 3 * rate and len(audio) == quiet_cut(loud, 3 * rate, rate)
    # Room left after the first sample: the second follows a short pause.
    both = prompt_audio([loud[: rate // 2], pieces[1]], rate, 10.0)
    assert len(both) == rate // 2 + int(0.3 * rate) + 2 * rate
