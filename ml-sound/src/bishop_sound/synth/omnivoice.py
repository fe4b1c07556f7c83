"""OmniVoice (k2-fsa, Apache-2.0 code and weights): zero-shot voice cloning in 600+ languages.

A Qwen3 reads the prompt's transcript and the sentence, sees the prompt's codec tokens, and
unmasks the sentence's tokens (8 codebooks, 25 frames a second) in a fixed number of steps, not
token by token. The codec is transformers' own Higgs Audio V2 tokenizer, 24 kHz. The voice
prompt (the sample's codes, transcript and loudness) is made once per voice version.
"""

import dataclasses
import json
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bishop_sound.audio import AudioError
from bishop_sound.settings import SoundSettings
from bishop_sound.synth.base import StaleConditioning, Synthesizer
from bishop_sound.synth.llasa import sample_prompt
from bishop_sound.synth.torchaudio_compat import ensure_importable

log = logging.getLogger("bishop.sound")

# Avatar language codes OmniVoice spells differently (its ids: omnivoice.utils.lang_map).
LANGUAGE_IDS = {"ar": "arb"}  # Modern Standard Arabic
# `<|…|>` in a reply or a transcript would be read as the prompt's own markers.
_MARKER = re.compile(r"<\|[^|<>]*\|>")
# The built-in voice: this sentence in a described voice, once per worker, with a fixed seed;
# it then prompts every reply that has no usable sample, so a reply keeps one voice.
PRESET_TEXT = "Hello! I am glad to talk with you today."
PRESET_VOICE = "female, middle-aged, moderate pitch"
PRESET_SEED = 1234
CACHE_FORMAT = 1


class OmniVoiceSynthesizer(Synthesizer):
    name = "omnivoice"
    sample_rate = 24000  # the Higgs Audio V2 codec's
    input_rate = 24000
    # About 15 s of speech: the piece OmniVoice itself cuts long text into.
    max_chars = 240

    def __init__(self, model: Any, settings: SoundSettings, device: str) -> None:
        self.model = model
        self.settings = settings
        self.device = device
        codec = model.audio_tokenizer.config
        self.sample_rate = int(model.sampling_rate)
        self.input_rate = self.sample_rate
        self.hop = int(codec.hop_length)
        self.codebooks = int(model.config.num_audio_codebook)
        self.codebook_size = int(codec.codebook_size)
        if (
            codec.num_quantizers != self.codebooks
            or self.codebook_size > model.config.audio_mask_id
        ):
            raise RuntimeError(
                f"the codec of {settings.omnivoice_model} ({codec.num_quantizers} codebooks of "
                f"{self.codebook_size}) does not fit its model ({self.codebooks} codebooks)"
            )
        known = model.supported_language_ids()
        wanted = [c.strip() for c in settings.omnivoice_languages.split(",") if c.strip()]
        unknown = [c for c in wanted if LANGUAGE_IDS.get(c, c) not in known]
        if unknown:
            raise RuntimeError(f"OmniVoice has no language {', '.join(unknown)}")
        self.languages = wanted
        # pad_duration 0: the worker puts its own pause between sentences.
        self.generation = import_omnivoice().OmniVoiceGenerationConfig(
            num_step=settings.omnivoice_steps,
            guidance_scale=settings.omnivoice_guidance_scale,
            pad_duration=0.0,
        )
        self._preset: dict[str, Any] | None = None

    @classmethod
    def load(cls, settings: SoundSettings) -> "OmniVoiceSynthesizer":
        ensure_importable()  # the codec resamples for its HuBERT with torchaudio
        import torch

        device = _device(settings)
        dtype = torch.float16 if device == "cuda" else torch.float32
        # A hub id is downloaded into HF_HOME once; the codec comes from its `audio_tokenizer/`.
        model = import_omnivoice().OmniVoice.from_pretrained(
            settings.omnivoice_model, dtype=dtype, device_map=device
        )
        log.info("OmniVoice %s on %s", settings.omnivoice_model, device)
        return cls(model.eval(), settings, device)

    # -- voice prompts

    def conditioning(self, samples: list[Path]) -> Any:
        """The voice prompt: up to `omnivoice_prompt_seconds` of the samples, their transcript,
        codec codes and loudness."""
        audio = sample_prompt(samples, self.input_rate, self.settings.omnivoice_prompt_seconds)
        if audio.size < self.hop:
            raise AudioError("the voice sample is too short for an OmniVoice prompt")
        return self._prompt(audio, self.transcribe(audio), preprocess=True)

    def _prompt(self, audio: np.ndarray, text: str, preprocess: bool) -> dict[str, Any]:
        import torch

        try:
            # `preprocess`: OmniVoice shortens long pauses (the words stay the transcript's).
            # Unlike `generate`, this is not in inference mode by itself.
            with torch.inference_mode():
                prompt = self.model.create_voice_clone_prompt(
                    (torch.from_numpy(audio), self.input_rate),
                    ref_text=text,
                    preprocess_prompt=preprocess,
                )
        except ValueError as exc:  # "Reference audio is empty after silence removal"
            raise AudioError(f"no speech in the voice sample: {exc}") from None
        codes = prompt.ref_audio_tokens.cpu().tolist()
        if not codes[0]:
            raise AudioError("the voice sample is too short for an OmniVoice prompt")
        return {"codes": codes, "text": prompt.ref_text, "rms": float(prompt.ref_rms)}

    def transcribe(self, audio: np.ndarray) -> str:
        """What the sample says: OmniVoice clones from the words and their sound together;
        without them (no ASR model configured) it has to guess where the prompt's speech ends."""
        if not self.settings.omnivoice_asr_model:
            log.warning("no BISHOP_OMNIVOICE_ASR_MODEL: the voice prompt has no transcript")
            return ""
        if self.model._asr_pipe is None:
            # Loaded when the first voice is prepared: a worker whose voices are all in the
            # cache never needs it.
            self.model.load_asr_model(self.settings.omnivoice_asr_model, device=self.device)
            log.info(
                "OmniVoice transcribes voice samples with %s", self.settings.omnivoice_asr_model
            )
        return _clean(self.model.transcribe((audio, self.input_rate)))

    def preset(self) -> Any:
        if self._preset is None:
            import torch

            devices = [torch.cuda.current_device()] if self.device == "cuda" else []
            # Kept whole (no silence removal): the prompt's codes then match its words.
            whole = dataclasses.replace(self.generation, postprocess_output=False)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(PRESET_SEED)
                audio = self.model.generate(
                    text=PRESET_TEXT, language="en", instruct=PRESET_VOICE, generation_config=whole
                )[0]
            self._preset = self._prompt(audio.astype(np.float32), PRESET_TEXT, preprocess=False)
        return self._preset

    # -- speech

    def synthesize(self, text: str, language: str, conditioning: Any) -> np.ndarray:
        import torch

        if self.languages and language not in self.languages:
            raise AudioError(
                f"OmniVoice does not speak {language!r} here; it speaks {', '.join(self.languages)}"
            )
        prompt = import_omnivoice().VoiceClonePrompt(
            ref_audio_tokens=torch.tensor(conditioning["codes"], dtype=torch.long),
            ref_text=conditioning["text"],
            ref_rms=conditioning["rms"],
        )
        audio = self.model.generate(
            text=_clean(text),
            language=LANGUAGE_IDS.get(language, language),
            voice_clone_prompt=prompt,
            generation_config=self.generation,
        )[0]
        return np.asarray(audio, dtype=np.float32)

    # -- the cache in object storage

    def dumps(self, conditioning: Any) -> bytes:
        entry = {
            "format": CACHE_FORMAT,
            "model": self.settings.omnivoice_model,
            "codes": conditioning["codes"],
            "text": conditioning["text"],
            "rms": conditioning["rms"],
        }
        return json.dumps(entry, ensure_ascii=False).encode()

    def loads(self, data: bytes) -> Any:
        try:
            entry = json.loads(data)
            made_by = (entry["format"], entry["model"])
            codes = [[int(c) for c in row] for row in entry["codes"]]
            text, rms = str(entry["text"]), float(entry["rms"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StaleConditioning(f"unreadable OmniVoice voice prompt: {exc}") from None
        if made_by != (CACHE_FORMAT, self.settings.omnivoice_model):
            raise StaleConditioning("the cached voice prompt is of another OmniVoice model")
        frames = {len(row) for row in codes}
        usable = (
            len(codes) == self.codebooks
            and len(frames) == 1
            and 0 not in frames
            and all(0 <= c < self.codebook_size for row in codes for c in row)
            and math.isfinite(rms)
            and rms >= 0
        )
        if not usable:
            raise StaleConditioning("the cached voice prompt does not fit this OmniVoice model")
        return {"codes": codes, "text": text, "rms": rms}


def import_omnivoice() -> Any:
    """The `omnivoice` package, imported without the warnings of pydub (which it uses for
    silence removal on raw samples): no ffmpeg is needed for that, and its Python 3.13 notes
    are not ours."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import omnivoice

    return omnivoice


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", _MARKER.sub(" ", text)).strip()


def _device(settings: SoundSettings) -> str:
    import torch

    if settings.tts_device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.tts_device
