"""Voice samples: from whatever the user uploaded to clean speech a model can clone."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bishop_infra.audio import AudioError, decode

MIN_SPEECH_SECONDS = 3.0
MAX_SPEECH_SECONDS = 60.0
FRAME_SECONDS = 0.02
TARGET_RMS_DB = -20.0
PEAK_LIMIT = 10 ** (-1.0 / 20)  # -1 dBFS


@dataclass(frozen=True)
class VoiceSample:
    audio: np.ndarray
    rate: int
    speech_seconds: float


def prepare(path: Path, rate: int) -> VoiceSample:
    """Decode, trim silence, normalise loudness; raises AudioError with the reason to show."""
    audio = decode(path, rate)
    frame = max(1, int(FRAME_SECONDS * rate))
    usable = audio[: len(audio) // frame * frame]
    if usable.size == 0:
        raise AudioError("the sample is too short")
    rms = np.sqrt(np.mean(usable.reshape(-1, frame) ** 2, axis=1) + 1e-12)
    level = 20 * np.log10(rms)
    # Speech: frames within 35 dB of the loudest, and above the noise floor of digital silence.
    speech = level > max(-55.0, float(level.max()) - 35.0)
    if not speech.any() or float(level.max()) < -55.0:
        raise AudioError("the sample is silent")
    speech_seconds = float(speech.sum()) * FRAME_SECONDS
    if speech_seconds < MIN_SPEECH_SECONDS:
        raise AudioError(
            f"the sample has {speech_seconds:.1f} s of speech; "
            f"at least {MIN_SPEECH_SECONDS:.0f} s are needed"
        )
    if speech_seconds > MAX_SPEECH_SECONDS:
        raise AudioError(
            f"the sample has {speech_seconds:.0f} s of speech; "
            f"at most {MAX_SPEECH_SECONDS:.0f} s are used, upload a shorter clip"
        )
    first, last = np.flatnonzero(speech)[[0, -1]]
    pad = int(0.1 / FRAME_SECONDS)
    trimmed = usable[max(0, first - pad) * frame : (last + 1 + pad) * frame]
    speech_rms = float(np.sqrt(np.mean(usable.reshape(-1, frame)[speech] ** 2)))
    gain = 10 ** (TARGET_RMS_DB / 20) / max(speech_rms, 1e-6)
    normalised = trimmed * gain
    peak = float(np.abs(normalised).max())
    if peak > PEAK_LIMIT:
        normalised *= PEAK_LIMIT / peak
    return VoiceSample(normalised.astype(np.float32), rate, speech_seconds)
