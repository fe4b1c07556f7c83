"""Real media for sound tests, made as the workers run: espeak-ng from its wheel, in-process,
and the ffmpeg binary that imageio-ffmpeg ships. No system program is needed."""

import subprocess
from pathlib import Path

from bishop_infra.audio import ffmpeg_exe
from bishop_sound.audio import wav_bytes
from bishop_sound.synth.demo import espeak, espeak_rate

SPEECH_RU = (
    "Здравствуйте, меня зовут Анна. Я преподаю физику уже много лет "
    "и очень люблю свою работу. Сегодня мы поговорим об импульсе и энергии."
)


def speech_wav(path: Path, text: str = SPEECH_RU, voice: str = "ru") -> Path:
    """`text` spoken in an espeak-ng voice, as a 16-bit mono WAV at espeak's 22050 Hz."""
    path.write_bytes(wav_bytes(espeak(text, voice), espeak_rate()))
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


def encode(source: Path, target: Path) -> Path:
    ffmpeg("-i", str(source), str(target))
    return target


def video(target: Path, audio: Path | None) -> Path:
    """A short black video, with `audio` as its sound track or with none."""
    inputs = ["-f", "lavfi", "-i", "color=c=black:s=64x64:d=6"]
    if audio is None:
        ffmpeg(*inputs, "-an", str(target))
    else:
        ffmpeg(*inputs, "-i", str(audio), "-shortest", "-c:a", "aac", str(target))
    return target
