"""The offline `demo` voice: espeak-ng. It works with no downloads and does NOT clone voices."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from bishop_sound.audio import AudioError, read_wav
from bishop_sound.synth.base import Synthesizer

_VOICES = {"ru": "ru", "en": "en-us", "uk": "uk", "de": "de", "fr": "fr", "es": "es"}


class EspeakSynthesizer(Synthesizer):
    name = "demo"
    sample_rate = 22050
    input_rate = 22050
    clones_voices = False

    def __init__(self) -> None:
        found = shutil.which("espeak-ng")
        if found is None:
            raise RuntimeError("the demo voice needs espeak-ng (apt-get install espeak-ng)")
        self.executable = found

    def conditioning(self, samples: list[Path]) -> Any:
        return None

    def preset(self) -> Any:
        return None

    def synthesize(self, text: str, language: str, conditioning: Any) -> np.ndarray:
        voice = _VOICES.get(language, language)
        result = subprocess.run(
            [self.executable, "-v", voice, "--stdout", text], capture_output=True, check=False
        )
        if result.returncode != 0 or not result.stdout:
            raise AudioError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()}")
        audio, rate = read_wav(result.stdout)
        if rate != self.sample_rate:
            raise AudioError(f"espeak-ng produced {rate} Hz, expected {self.sample_rate}")
        return audio

    def dumps(self, conditioning: Any) -> bytes:
        return b""

    def loads(self, data: bytes) -> Any:
        return None
