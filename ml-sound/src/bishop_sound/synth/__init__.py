"""Synthesis backends, chosen by `BISHOP_TTS_BACKEND`."""

from bishop_sound.settings import SoundSettings
from bishop_sound.synth.base import Synthesizer


def load_synthesizer(settings: SoundSettings) -> Synthesizer:
    """Load the configured backend once; its model stays in memory for the worker's life."""
    if settings.tts_backend == "xtts":
        from bishop_sound.synth.xtts import XttsSynthesizer

        return XttsSynthesizer.load(settings)
    if settings.tts_backend == "llasa":
        from bishop_sound.synth.llasa import LlasaSynthesizer

        return LlasaSynthesizer.load(settings)
    if settings.tts_backend == "omnivoice":
        from bishop_sound.synth.omnivoice import OmniVoiceSynthesizer

        return OmniVoiceSynthesizer.load(settings)
    from bishop_sound.synth.demo import EspeakSynthesizer

    return EspeakSynthesizer()


__all__ = ["Synthesizer", "load_synthesizer"]
