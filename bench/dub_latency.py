"""Time to the first audio chunk versus the complete dub, and real-time factor, per offline backend.

A 5-sentence reply is dubbed by the real ml-sound path (memory bus, local storage): the first
`dub_chunk` is announced when its sentence is stored; the complete dub after the last one.
The XTTS, LLaSA and OmniVoice here are the tiny random-weight models of the tests: their timings
show the pipeline's shape, not real XTTS v2, Llasa-1B or OmniVoice speed. The LLaSA reply is
English (the language check of Llasa-1B-Multilingual refuses Russian); its voice prompt, and
OmniVoice's, is the tests' 3 s. OmniVoice unmasks in its default 32 steps.

    uv run python -m bench.dub_latency --runs 5
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bishop_contracts.events import SoundInference
from bishop_infra.storage import storage_from_url
from bishop_sound import worker as sound_worker
from bishop_sound.audio import read_wav
from bishop_sound.settings import SoundSettings

from tests.sound import media, tiny_llasa, tiny_omnivoice, tiny_xtts

REPLY = {
    "ru": (
        "Импульс — это произведение массы тела на его скорость. "
        "Он сохраняется в замкнутой системе. "
        "Например, при столкновении двух шаров суммарный импульс не меняется. "
        "Это следует из третьего закона Ньютона. "
        "Попробуйте проверить это на опыте!"
    ),
    "en": (
        "Momentum is the product of a body's mass and its velocity. "
        "It is conserved in a closed system. "
        "For example, when two balls collide, their total momentum does not change. "
        "This follows from Newton's third law. "
        "Try checking it with an experiment!"
    ),
}


async def measure(
    settings: SoundSettings, runs: int, root: Path, language: str = "ru"
) -> dict[str, float]:
    dubber = sound_worker.build(settings, group="bench")
    storage = storage_from_url(settings.resolved_storage_url)
    prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"
    voice = f"{prefix}audio/voice.wav"
    await storage.put_bytes(voice, media.speech_wav(root / "voice.wav").read_bytes(), "audio/wav")

    async def one() -> tuple[float, float, float]:
        message_id = uuid.uuid4()
        request = SoundInference(
            storage_url=f"{prefix}dubs/{message_id}.wav",
            base_voice_url=voice,
            voice_urls=[voice],
            message_id=message_id,
            text=REPLY[language],
            language=language,
        )
        first: list[float] = []
        start = time.perf_counter()
        await dubber.dub(request, on_chunk=lambda i: _mark(first, start, i))
        total = time.perf_counter() - start
        audio, rate = read_wav(await storage.get_bytes(request.storage_url))
        return first[0], total, total / (len(audio) / rate)

    cold_first, cold_total, _ = await one()  # computes the voice's conditioning
    warm = [await one() for _ in range(runs)]
    first = statistics.median(w[0] for w in warm)
    total = statistics.median(w[1] for w in warm)
    return {
        "cold_first_s": cold_first,
        "cold_total_s": cold_total,
        "first_s": first,
        "total_s": total,
        "ratio": first / total,
        "rtf": statistics.median(w[2] for w in warm),
    }


async def _mark(first: list[float], start: float, index: int) -> None:
    if index == 0:
        first.append(time.perf_counter() - start)


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backends = {
            "demo (espeak-ng)": {"tts_backend": "demo"},
            "xtts (tiny, random weights)": {
                "tts_backend": "xtts",
                "xtts_model_dir": tiny_xtts.build(root / "xtts"),
                "tts_device": "cpu",
            },
            "llasa (tiny, random weights)": {
                **tiny_llasa.build(root / "llasa"),
                "llasa_prompt_seconds": 3.0,
            },
            "omnivoice (tiny, random weights)": {
                **tiny_omnivoice.build(root / "omnivoice"),
                "omnivoice_prompt_seconds": 3.0,
            },
        }
        columns = [
            "first chunk s",
            "complete dub s",
            "first/complete",
            "RTF",
            "cold first s",
            "cold complete s",
        ]
        print("| backend | " + " | ".join(columns) + " |")
        print("|---|---|---|---|---|---|---|")
        for name, tts in backends.items():
            settings = SoundSettings(
                _env_file=None,
                bus_url=f"memory://bench-{uuid.uuid4().hex[:6]}",
                storage_url=f"file://{root}/objects",
                **tts,
            )
            language = "en" if tts["tts_backend"] == "llasa" else "ru"
            r = await measure(settings, runs, root, language)
            print(
                f"| {name} | {r['first_s']:.3f} | {r['total_s']:.3f} | {r['ratio']:.2f} "
                f"| {r['rtf']:.3f} | {r['cold_first_s']:.3f} | {r['cold_total_s']:.3f} |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
