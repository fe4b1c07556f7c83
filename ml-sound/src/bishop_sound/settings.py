"""ml-sound settings (`BISHOP_*` variables, `.env`)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from bishop_infra.settings import InfraSettings
from pydantic import Field


class SoundSettings(InfraSettings):
    tts_backend: Literal["demo", "xtts", "llasa", "omnivoice"] = "demo"
    # What a voice speaks when it lacks the avatar's language (the reply says so).
    fallback_language: str = "en"
    # Where the XTTS v2 files are (model.pth, config.json, vocab.json, speakers_xtts.pth); empty:
    # coqui's own download into TTS_HOME (the user's machine needs hub access once).
    xtts_model_dir: Path | None = None
    xtts_preset_speaker: str = "Claribel Dervla"
    # LLaSA: a Llama speaking X-Codec2 tokens, decoded by transformers' own Xcodec2Model. Hub
    # ids (downloaded into HF_HOME on the user's machine) or local folders. CC-BY-NC weights.
    llasa_model: str = "HKUSTAudio/Llasa-1B-Multilingual"
    xcodec2_model: str = "HKUSTAudio/xcodec2-hf"
    # Transcribes the voice sample: LLaSA clones from its words and sound together. Empty: the
    # prompt has no words, and cloning is worse.
    llasa_asr_model: str = "openai/whisper-large-v3-turbo"
    # What the checkpoint was trained to speak (Llasa-1B-Multilingual's card); other languages
    # fail the dub with the reason. Empty: any.
    llasa_languages: str = "zh,en,de,fr,ja,ko,nl,es,it,pt,pl"
    # Of the voice sample, in every sentence's prompt (50 tokens a second): whisper hears 30 s,
    # and LLaSA's 2048 tokens must hold the sentence's speech too.
    llasa_prompt_seconds: float = Field(10.0, gt=0, le=20)
    llasa_temperature: float = 0.8
    llasa_top_p: float = 1.0
    llasa_top_k: int = 50
    # Bounds a sentence's speech tokens: no slower than this, plus a second.
    llasa_slowest_chars_per_second: float = 8.0
    llasa_max_length: int = 2048  # prompt and speech tokens; what LLaSA was trained on
    # OmniVoice (k2-fsa): a Qwen3 that unmasks Higgs Audio V2 codec tokens in a few steps.
    # Apache-2.0 code and weights. A hub id or a local folder (with its `audio_tokenizer/`).
    omnivoice_model: str = "k2-fsa/OmniVoice"
    # Transcribes the voice sample: OmniVoice, like LLaSA, clones from its words and sound
    # together. Empty: the prompt has no words, and cloning is worse.
    omnivoice_asr_model: str = "openai/whisper-large-v3-turbo"
    # The avatar languages it speaks (all of them are in its training data; Russian ~20,000 h);
    # others are spoken in the fallback language, with a note. Empty: any.
    omnivoice_languages: str = "ru,en,de,fr,es,it,pt,pl,tr,nl,cs,ar,zh,ja,hu,ko,hi"
    # Of the voice sample, in every sentence's prompt (25 codec frames a second): the model
    # card asks for 3-10 s; longer prompts are slower and clone no better.
    omnivoice_prompt_seconds: float = Field(10.0, gt=0, le=20)
    # Unmasking steps per sentence: the model's default 32; its docs suggest 16 for speed.
    omnivoice_steps: int = Field(32, ge=1, le=64)
    omnivoice_guidance_scale: float = Field(2.0, ge=0)
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
