"""The sound worker on a machine with no espeak-ng or ffmpeg program: the demo voice speaks
from its wheel and voice samples decode with the bundled ffmpeg."""

import asyncio
import io
import wave
from pathlib import Path

from bishop_contracts import events as ev
from bishop_sound.voice import prepare

from tests.sound import media
from tests.sound.bare import run_bare
from tests.sound.test_dubbing import _harness

REPLY = {"ru": "Здравствуйте! Как ваши дела?", "en": "Hello there! How are you today?"}


def voice_replies(folder: str) -> dict:
    """In the bare child: replies voiced by the demo voice, and a voice sample in MP4."""
    tmp = Path(folder)
    sample = prepare(media.video(tmp / "sample.mp4", media.speech_wav(tmp / "sample.wav")), 22050)
    return {"sample_seconds": sample.speech_seconds, **asyncio.run(_dub(tmp))}


async def _dub(tmp: Path) -> dict:
    found = {}
    async for harness in _harness(tmp, {"tts_backend": "demo"}):
        dubber = harness.dubber()
        for language, text in REPLY.items():
            request = harness.request(text, []).model_copy(update={"language": language})
            await dubber.dub(request)
            done = await harness.outcome(request)
            if not isinstance(done, ev.SaveResponseDub):
                found[language] = {"failed": done.model_dump(mode="json")}
                continue
            with wave.open(io.BytesIO(await harness.storage.get_bytes(done.dub_url))) as dub:
                seconds = dub.getnframes() / dub.getframerate()
            chunks = harness.probe.all(
                lambda e, r=request: e.event == "dub_chunk" and e.message_id == r.message_id
            )
            found[language] = {"seconds": seconds, "sentences": [c.text for c in chunks]}
    return found


def test_replies_are_voiced_without_system_programs(tmp_path: Path) -> None:
    result = run_bare(f"{__name__}:voice_replies", str(tmp_path), result=tmp_path / "out.json")
    assert isinstance(result, dict)
    assert result["ru"]["sentences"] == ["Здравствуйте!", "Как ваши дела?"], result
    assert result["en"]["sentences"] == ["Hello there!", "How are you today?"], result
    assert 1.0 < result["ru"]["seconds"] < 10 and 1.0 < result["en"]["seconds"] < 10
    assert 3.0 < result["sample_seconds"] < 15.0
