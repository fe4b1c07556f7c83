"""Audio in and out: decode anything ffmpeg reads, write 16-bit PCM WAV."""

import io
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """The audio cannot be used; the message is meant for the user."""


def ffmpeg_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # bundled binary, for machines without a system ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def decode(path: Path, rate: int) -> np.ndarray:
    """Mono float32 samples at `rate` from any audio or video file ffmpeg reads."""
    command = [
        ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-f",
        "f32le",
        "-",
    ]
    result = subprocess.run(command, capture_output=True, check=False)
    errors = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0:
        if "does not contain any stream" in errors or "matches no streams" in errors:
            raise AudioError("the file has no audio track")
        raise AudioError("the file could not be decoded as audio (corrupt or unsupported)")
    audio = np.frombuffer(result.stdout, dtype=np.float32)
    if audio.size == 0:
        raise AudioError("the file has no audio track")
    return audio


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """16-bit PCM mono WAV."""
    pcm = (np.clip(np.nan_to_num(audio), -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as source:
        if source.getsampwidth() != 2:
            raise AudioError("expected 16-bit PCM")
        frames = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        channels = source.getnchannels()
        rate = source.getframerate()
    audio = frames.astype(np.float32) / 32768.0
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    return audio, rate


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)
