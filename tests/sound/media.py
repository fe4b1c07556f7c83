"""Real media for sound tests, made with espeak-ng and ffmpeg."""

import subprocess
from pathlib import Path

SPEECH_RU = (
    "Здравствуйте, меня зовут Анна. Я преподаю физику уже много лет "
    "и очень люблю свою работу. Сегодня мы поговорим об импульсе и энергии."
)


def speech_wav(path: Path, text: str = SPEECH_RU, voice: str = "ru") -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


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
