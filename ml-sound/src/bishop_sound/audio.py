"""16-bit PCM WAV in and out. Decoding uploaded files is bishop_infra.audio's, shared with the
text worker; its AudioError is this worker's too."""

import io
import wave

import numpy as np
from bishop_infra.audio import AudioError

__all__ = ["AudioError", "read_wav", "silence", "wav_bytes"]


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
