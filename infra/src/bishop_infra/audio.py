"""Audio decoding for both workers: any audio or video file to mono float32 samples, with the
ffmpeg binary that the imageio-ffmpeg wheel ships, so no system ffmpeg is needed."""

import subprocess
from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """The file cannot be used as audio; the message is meant for the user."""


def ffmpeg_exe() -> str:
    """imageio-ffmpeg's bundled ffmpeg (the `IMAGEIO_FFMPEG_EXE` variable names another)."""
    import imageio_ffmpeg

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
    errors = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        # ffmpeg's words for a file whose only streams are video (or none at all).
        if "does not contain any stream" in errors or "matches no streams" in errors:
            raise AudioError("the file has no audio track")
        raise AudioError("the file could not be decoded as audio (corrupt or unsupported format)")
    # A writable copy: torch.from_numpy (in whisper) warns on a read-only buffer.
    audio = np.frombuffer(result.stdout, dtype=np.float32).copy()
    if audio.size == 0:
        raise AudioError("the file has no audio track")
    return audio
