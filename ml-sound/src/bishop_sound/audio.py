"""16-bit PCM WAV in and out, and MP3 out. Decoding uploaded files is bishop_infra.audio's,
shared with the text worker; its AudioError is this worker's too."""

import io
import wave

import numpy as np
import soundfile
from bishop_infra.audio import AudioError

__all__ = ["AudioError", "mp3_bytes", "read_wav", "silence", "wav_bytes"]

# The rates MPEG-1/2 Layer III has; the voices speak at 16, 22.05 or 24 kHz.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# LAME's VBR quality, 0 (best) to 1: 0.6 keeps speech clear at about 50 kbit/s mono.
MP3_QUALITY = 0.6


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


def mp3_bytes(audio: np.ndarray, rate: int) -> bytes:
    """Mono VBR MP3 with a Xing/LAME header (a player reads the length and seeks from it),
    encoded in-process by the libsndfile (LAME) that the soundfile wheel bundles."""
    audio = np.clip(np.nan_to_num(audio), -1.0, 1.0).astype(np.float32)
    if rate not in MP3_RATES:
        target = min((r for r in MP3_RATES if r >= rate), default=MP3_RATES[-1])
        count = round(len(audio) * target / rate)
        audio = np.interp(np.arange(count) * rate / target, np.arange(len(audio)), audio)
        audio, rate = audio.astype(np.float32), target
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format="MP3", compression_level=MP3_QUALITY)
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
