"""The OmniVoice backend on a tiny random-weight model: voice sample -> prompt (transcript, codec
codes and loudness, kept in storage) -> speech sentence by sentence -> chunks, dub and events."""

import asyncio
import io
import json
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bishop_contracts import events as ev
from bishop_contracts.languages import LANGUAGES
from bishop_contracts.topics import Topic
from bishop_sound import worker as sound_worker
from bishop_sound.audio import read_wav
from bishop_sound.dubbing import PAUSE_SECONDS
from bishop_sound.synth.base import StaleConditioning
from bishop_sound.synth.omnivoice import OmniVoiceSynthesizer
from transformers import HiggsAudioV2TokenizerModel

from tests.sound import media, tiny_omnivoice
from tests.sound.test_dubbing import Harness, _harness
from tests.support.calls import counted

# Russian: the language the other openly licensed voices lack.
REPLY = (
    "Первое предложение короткое. Второе задаёт вопрос? "
    "Третье, с запятой. Четвёртое здесь! И пятое его заканчивает."
)


@pytest.fixture(scope="module")
def omnivoice_settings(tmp_path_factory: pytest.TempPathFactory) -> dict:
    models = tiny_omnivoice.build(tmp_path_factory.mktemp("omnivoice"))
    # A short prompt and few unmasking steps keep the random model's speech (and the test) short.
    return {**models, "omnivoice_prompt_seconds": 3.0, "omnivoice_steps": 4}


@pytest.fixture
async def omni(tmp_path: Path, omnivoice_settings: dict) -> AsyncIterator[Harness]:
    async for h in _harness(tmp_path, omnivoice_settings):
        yield h


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return media.speech_wav(tmp_path_factory.mktemp("speech") / "voice.wav")


def stored(harness: Harness, pattern: str) -> list[str]:
    """Keys in the harness's local object storage matching `pattern`."""
    root = Path(harness.settings.storage_url.removeprefix("file://"))
    return [str(p.relative_to(root)) for p in root.glob(pattern)]


def frames(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as parsed:
        assert parsed.getsampwidth() == 2 and parsed.getnchannels() == 1
        return parsed.getframerate(), parsed.getnframes()


def generations(monkeypatch: pytest.MonkeyPatch, model: Any) -> list[dict[str, Any]]:
    """Each `model.generate` call's keyword arguments and its first audio."""
    calls: list[dict[str, Any]] = []
    original = model.generate

    def generate(**kwargs: Any) -> list[np.ndarray]:
        audios = original(**kwargs)
        calls.append({**kwargs, "audio": audios[0]})
        return audios

    monkeypatch.setattr(model, "generate", generate)
    return calls


async def test_a_reply_is_voiced_sentence_by_sentence(
    omni: Harness, speech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dubber = omni.dubber()
    synth = dubber.synth
    assert isinstance(synth, OmniVoiceSynthesizer)
    assert (synth.sample_rate, synth.hop, synth.codebooks) == (24000, 960, 8)
    spoken = counted(monkeypatch, synth, "synthesize")
    generated = generations(monkeypatch, synth.model)
    decoded = counted(monkeypatch, synth.model.audio_tokenizer, "decode")
    at_first_chunk: list[int] = []

    async def on_chunk(index: int) -> None:
        if index == 0:
            at_first_chunk.append(len(spoken))

    request = omni.request(REPLY, [await omni.voice(speech)])
    await dubber.dub(request, on_chunk=on_chunk)
    done = await omni.outcome(request)
    assert isinstance(done, ev.SaveResponseDub)
    # Russian is spoken as Russian: no fallback note.
    assert done.voice == "cloned from the avatar's voice sample"
    # The first sentence is out before the second is generated.
    assert at_first_chunk == [1] and len(spoken) == 5

    chunks = omni.probe.all(lambda e: e.event == "dub_chunk" and e.message_id == request.message_id)
    assert [c.index for c in chunks] == [0, 1, 2, 3, 4]
    assert chunks[1].text == "Второе задаёт вопрос?"
    prompt = dubber._voices[next(iter(dubber._voices))]
    assert len(generated) == len(decoded) == 5
    lengths = []
    for chunk, call, (codes,) in zip(chunks, generated, decoded, strict=True):
        # Each sentence alone, in Russian, after the voice prompt's codes and words.
        assert call["text"] == chunk.text and call["language"] == "ru"
        clone = call["voice_clone_prompt"]
        assert clone.ref_audio_tokens.tolist() == prompt["codes"]
        assert clone.ref_text == prompt["text"]
        # The sentence's own codes, all unmasked (the mask id is 1024), 8 codebooks.
        assert codes.shape[:2] == (1, 8) and codes.shape[2] >= 1
        assert int(codes.min()) >= 0 and int(codes.max()) < synth.codebook_size
        audio, rate = read_wav(await omni.storage.get_bytes(chunk.chunk_url))
        assert rate == 24000 and 0 < len(audio) <= codes.shape[2] * synth.hop
        # What was stored is what the model said.
        assert len(audio) == len(call["audio"])
        assert np.allclose(audio, call["audio"], atol=1e-4)
        lengths.append(len(audio))

    data = await omni.storage.get_bytes(done.dub_url)
    rate, count = frames(data)
    assert rate == 24000 and count == sum(lengths) + 4 * int(PAUSE_SECONDS * rate)
    audio, _ = read_wav(data)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


async def test_the_voice_prompt_is_made_once_and_kept_in_storage(
    omni: Harness, speech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes = counted(monkeypatch, HiggsAudioV2TokenizerModel, "encode")
    dubber = omni.dubber()
    voice = await omni.voice(speech)
    for text in ("Первое сообщение.", "Второе сообщение."):
        request = omni.request(text, [voice])
        await dubber.dub(request)
        assert isinstance(await omni.outcome(request), ev.SaveResponseDub)
    assert dubber.conditionings_computed == 1 and len(encodes) == 1
    assert dubber.synth.model._asr_pipe is not None  # the sample was transcribed

    cached = stored(omni, f"{omni.prefix}voice/*.omnivoice.cond")
    assert len(cached) == 1
    entry = json.loads(await omni.storage.get_bytes(cached[0]))
    assert isinstance(entry["text"], str) and entry["text"]  # the sample's transcript
    assert isinstance(entry["rms"], float) and entry["rms"] > 0
    # Eight codebooks of at most three seconds at 25 frames a second (long pauses taken out).
    assert len(entry["codes"]) == 8 and len({len(row) for row in entry["codes"]}) == 1
    assert 0 < len(entry["codes"][0]) <= 75
    assert all(0 <= c < 1024 for row in entry["codes"] for c in row)

    # A restarted worker loads the prompt: it neither encodes nor transcribes.
    restarted = omni.dubber()
    request = omni.request("Третье сообщение.", [voice])
    await restarted.dub(request)
    assert isinstance(await omni.outcome(request), ev.SaveResponseDub)
    assert restarted.conditionings_computed == 0 and len(encodes) == 1
    assert restarted.synth.model._asr_pipe is None
    assert restarted._voices[next(iter(restarted._voices))] == {
        "codes": entry["codes"],
        "text": entry["text"],
        "rms": entry["rms"],
    }

    # A prompt cached by another OmniVoice model is made again, once.
    await omni.storage.put_bytes(
        cached[0], json.dumps({**entry, "model": "another/model"}).encode(), "application/json"
    )
    again = omni.dubber()
    for text in ("Четвёртое сообщение.", "Пятое сообщение."):
        request = omni.request(text, [voice])
        await again.dub(request)
        assert isinstance(await omni.outcome(request), ev.SaveResponseDub)
    assert again.conditionings_computed == 1 and len(encodes) == 2


async def test_a_cached_prompt_that_does_not_fit_the_model_is_refused(omni: Harness) -> None:
    synth = omni.dubber().synth
    good = {"codes": [[1, 2, 3]] * 8, "text": "Привет.", "rms": 0.05}
    assert synth.loads(synth.dumps(good)) == good
    for bad in (
        {**good, "codes": [[1, 2, 3]] * 7},  # a codec with other codebooks
        {**good, "codes": [[1, 2, 1024]] * 8},  # the mask is not a code
        {**good, "codes": [[1, 2, 3]] * 7 + [[1, 2]]},
        {**good, "codes": [[]] * 8},
        {**good, "rms": float("nan")},
    ):
        with pytest.raises(StaleConditioning):
            synth.loads(synth.dumps(bad))
    with pytest.raises(StaleConditioning):
        synth.loads(b"not json")


async def test_the_preset_voice_is_one_voice(omni: Harness) -> None:
    first, second = omni.dubber(), omni.dubber()
    for dubber in (first, second):
        request = omni.request("Здесь нет образца.", [])
        await dubber.dub(request)
        done = await omni.outcome(request)
        assert isinstance(done, ev.SaveResponseDub)
        assert done.voice == "preset voice: the avatar has no voice sample"
    # Made once per worker, with a fixed seed: the same voice after a restart.
    assert first.synth.preset() is first.synth.preset()
    assert first.synth.preset() == second.synth.preset()
    preset = first.synth.preset()
    assert len(preset["codes"]) == 8 and len(preset["codes"][0]) > 0
    assert preset["text"] == "Hello! I am glad to talk with you today."


async def test_every_avatar_language_is_spoken_in_its_own_id(
    omni: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    dubber = omni.dubber()
    assert sorted(dubber.synth.languages) == sorted(LANGUAGES)
    generated = generations(monkeypatch, dubber.synth.model)
    for language in ("ar", "hi"):
        request = omni.request("Один.", []).model_copy(update={"language": language})
        await dubber.dub(request)
        done = await omni.outcome(request)
        assert isinstance(done, ev.SaveResponseDub)
        assert done.voice == "preset voice: the avatar has no voice sample"  # no fallback note
    # Arabic is OmniVoice's Modern Standard Arabic; the preset speaks English once.
    assert [c["language"] for c in generated] == ["en", "arb", "hi"]


async def test_the_worker_checks_a_sample_and_voices_a_reply_over_the_bus(
    omni: Harness, speech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes = counted(monkeypatch, HiggsAudioV2TokenizerModel, "encode")
    voice = await omni.voice(speech)
    avatar_id = uuid.UUID(omni.prefix.split("/")[3])

    async def serving() -> asyncio.Task:
        task = asyncio.create_task(
            sound_worker.run(omni.settings, group=f"ml-sound-{uuid.uuid4().hex[:6]}")
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
        await omni.probe.publish(Topic.MATERIALS, sample)
        checked = await omni.probe.wait_for(
            lambda e: (
                e.event in ("material_processed", "material_failed")
                and e.material_id == sample.material_id
            ),
            timeout=60,
        )
        assert isinstance(checked, ev.MaterialProcessed) and checked.stats["speech_seconds"] > 3

        request = omni.request("Здравствуйте. Как у вас дела?", [voice])
        await omni.probe.publish(Topic.SOUND_INFERENCE, request)
        done = await omni.outcome(request)
        assert isinstance(done, ev.SaveResponseDub)
    finally:
        await stop(worker)
    chunks = omni.probe.all(lambda e: e.event == "dub_chunk" and e.message_id == request.message_id)
    assert [c.index for c in chunks] == [0, 1]
    rate, count = frames(await omni.storage.get_bytes(done.dub_url))
    assert rate == 24000 and count > 0
    assert len(encodes) == 1

    # The same voice after a restart: the prompt comes from storage.
    worker = await serving()
    try:
        request = omni.request("Всё тот же голос.", [voice])
        await omni.probe.publish(Topic.SOUND_INFERENCE, request)
        assert isinstance(await omni.outcome(request), ev.SaveResponseDub)
    finally:
        await stop(worker)
    assert len(encodes) == 1
