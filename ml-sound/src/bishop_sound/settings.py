"""ml-sound settings (`BISHOP_*` variables, `.env`)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from bishop_infra.settings import InfraSettings


class SoundSettings(InfraSettings):
    # LLaSA is not offered: its only packaged decoder (xcodec2) pins torch 2.5, and Bishop pins
    # torch 2.13.
    tts_backend: Literal["demo", "xtts"] = "demo"
    # Where the XTTS v2 files are (model.pth, config.json, vocab.json, speakers_xtts.pth); empty:
    # coqui's own download into TTS_HOME (the user's machine needs hub access once).
    xtts_model_dir: Path | None = None
    xtts_preset_speaker: str = "Claribel Dervla"
    tts_device: Literal["auto", "cpu", "cuda"] = "auto"
    # An unusable or missing voice sample: speak with the preset voice (and say so), or fail.
    fallback_to_preset_voice: bool = True
    conditioning_cache_size: int = 64
    # Where this worker's temp folder goes (voice samples being prepared); empty: the system's
    # temp folder. Roots left by killed workers are removed when a worker starts.
    temp_dir: Path | None = None


@lru_cache
def get_settings() -> SoundSettings:
    return SoundSettings()
