"""LLaSA (HKUSTAudio Llasa-1B): a Llama that speaks in X-Codec2 speech tokens.

The voice is cloned by prompting: the sample's transcript goes before the reply's text, and the
sample's speech tokens open the speech the model continues. The codec is transformers' own
`Xcodec2Model` (the `xcodec2` package pins an old torch). Speech is 16 kHz, 50 tokens a second.
"""

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from bishop_sound.audio import AudioError, read_wav
from bishop_sound.settings import SoundSettings
from bishop_sound.synth.base import StaleConditioning, Synthesizer
from bishop_sound.synth.torchaudio_compat import ensure_importable

log = logging.getLogger("bishop.sound")

TEXT_START = "<|TEXT_UNDERSTANDING_START|>"
TEXT_END = "<|TEXT_UNDERSTANDING_END|>"
SPEECH_START = "<|SPEECH_GENERATION_START|>"
SPEECH_END = "<|SPEECH_GENERATION_END|>"
INSTRUCTION = "Convert the text to speech:"
_SPEECH_TOKEN = re.compile(r"<\|s_(\d+)\|>")
# Marker-like text (`<|…|>`) in a reply or a transcript would be read as the prompt's own tokens.
_MARKER = re.compile(r"<\|[^|<>]*\|>")
# Nobody speaks faster: a sentence gets at least this many tokens, so a stop sampled too early
# cannot swallow it.
_FASTEST_CHARS_PER_SECOND = 25.0
_SLACK_SECONDS = 1.0
_PAUSE_BETWEEN_SAMPLES = 0.3
# The built-in voice: this sentence spoken with no prompt, once per worker, with a fixed seed;
# its speech then prompts every reply that has no usable sample, so a reply keeps one voice.
PRESET_TEXT = "Hello! I am glad to talk with you today."
PRESET_SEED = 1234
CACHE_FORMAT = 1


class LlasaSynthesizer(Synthesizer):
    name = "llasa"
    sample_rate = 16000  # X-Codec2's
    input_rate = 16000
    max_chars = 180

    def __init__(
        self,
        lm: Any,
        tokenizer: Any,
        codec: Any,
        features: Any,
        settings: SoundSettings,
        device: str,
    ) -> None:
        self.lm = lm
        self.tokenizer = tokenizer
        self.codec = codec
        self.features = features
        self.settings = settings
        self.device = device
        self.hop = int(codec.config.hop_length)
        self.sample_rate = int(codec.config.sampling_rate)
        self.input_rate = self.sample_rate
        self.tokens_per_second = self.sample_rate / self.hop
        self.first_speech_id, self.speech_tokens = speech_token_range(tokenizer)
        codebook = int(np.prod(codec.config.quantization_levels))
        if codebook != self.speech_tokens:
            raise RuntimeError(
                f"the LLaSA tokenizer has {self.speech_tokens} speech tokens but the X-Codec2 "
                f"codebook has {codebook} codes: they are not a pair"
            )
        self.end_id = _token_id(tokenizer, SPEECH_END)
        self.languages = [c.strip() for c in settings.llasa_languages.split(",") if c.strip()]
        self._speech_only = _SpeechOnly(
            self.first_speech_id, self.speech_tokens, self.end_id, _vocab_size(lm)
        )
        self._asr: Any = None
        self._preset: dict[str, Any] | None = None

    @classmethod
    def load(cls, settings: SoundSettings) -> "LlasaSynthesizer":
        ensure_importable()  # the X-Codec2 feature extractor imports torchaudio
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForCausalLM, AutoTokenizer
        from transformers.models.xcodec2 import Xcodec2Model

        device = _device(settings)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(settings.llasa_model)
        if not tokenizer.chat_template:
            raise RuntimeError(f"{settings.llasa_model} has no chat template: not a LLaSA model")
        lm = AutoModelForCausalLM.from_pretrained(settings.llasa_model, dtype=dtype).to(device)
        # The codec in float32: its quantizer and ISTFT work in float32 anyway.
        codec = Xcodec2Model.from_pretrained(settings.xcodec2_model).to(device)
        features = AutoFeatureExtractor.from_pretrained(settings.xcodec2_model)
        log.info("LLaSA %s with %s on %s", settings.llasa_model, settings.xcodec2_model, device)
        return cls(lm.eval(), tokenizer, codec.eval(), features, settings, device)

    # -- voice prompts

    def conditioning(self, samples: list[Path]) -> Any:
        """The voice prompt: up to `llasa_prompt_seconds` of the samples, their transcript and
        their X-Codec2 codes."""
        audio = sample_prompt(samples, self.input_rate, self.settings.llasa_prompt_seconds)
        if audio.size < self.hop:
            raise AudioError("the voice sample is too short for a LLaSA prompt")
        text = self.transcribe(audio)
        codes = self.encode(audio)
        return {"codes": codes, "text": text}

    def encode(self, audio: np.ndarray) -> list[int]:
        """X-Codec2 codes of 16 kHz mono audio, one per `hop` samples."""
        import torch

        inputs = self.features(audio, sampling_rate=self.sample_rate, return_tensors="pt")
        with torch.inference_mode():
            out = self.codec.encode(**{k: v.to(self.device) for k, v in inputs.items()})
        return [int(c) for c in out.audio_codes[0, 0, : len(audio) // self.hop].tolist()]

    def decode(self, codes: list[int]) -> np.ndarray:
        import torch

        tensor = torch.tensor(codes, dtype=torch.long, device=self.device).view(1, 1, -1)
        with torch.inference_mode():
            audio = self.codec.decode(audio_codes=tensor).audio_values
        return audio[0, 0].float().cpu().numpy()

    def transcribe(self, audio: np.ndarray) -> str:
        """What the sample says. LLaSA clones from the words and their sound together: without
        the words (no ASR model configured) it has to guess where the prompt's speech ends."""
        if not self.settings.llasa_asr_model:
            log.warning("no BISHOP_LLASA_ASR_MODEL: the voice prompt has no transcript")
            return ""
        # The prompt is under whisper's 30 s window: one pass, no chunking.
        result = self._transcriber()({"raw": audio, "sampling_rate": self.input_rate})
        return _clean(str(result.get("text", "")))

    def _transcriber(self) -> Any:
        # Loaded when the first voice is prepared: a worker whose voices are all in the cache
        # never needs it.
        if self._asr is None:
            import torch
            from transformers import pipeline

            self._asr = pipeline(
                "automatic-speech-recognition",
                model=self.settings.llasa_asr_model,
                device=self.device,
                dtype=torch.float16 if self.device == "cuda" else torch.float32,
            )
            log.info("LLaSA transcribes voice samples with %s", self.settings.llasa_asr_model)
        return self._asr

    def preset(self) -> Any:
        if self._preset is None:
            import torch

            devices = [torch.cuda.current_device()] if self.device == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(PRESET_SEED)
                codes = self._generate(PRESET_TEXT, {"codes": [], "text": ""})
            self._preset = {"codes": codes, "text": PRESET_TEXT}
        return self._preset

    # -- speech

    def synthesize(self, text: str, language: str, conditioning: Any) -> np.ndarray:
        if self.languages and language not in self.languages:
            raise AudioError(
                f"LLaSA does not speak {language!r}; it speaks {', '.join(self.languages)}"
            )
        codes = self._generate(text, conditioning)
        prompt = list(conditioning["codes"])
        # Decoded with the prompt before it, as LLaSA's own inference does, then cut off: the
        # codec's transformer sees the voice it continues.
        audio = self.decode(prompt + codes)
        return audio[len(prompt) * self.hop :].astype(np.float32)

    def _generate(self, text: str, conditioning: dict[str, Any]) -> list[int]:
        import torch
        from transformers import LogitsProcessorList

        prompt_codes = list(conditioning["codes"])
        spoken = " ".join(t for t in (conditioning["text"], _clean(text)) if t)
        chat = [
            {"role": "user", "content": f"{INSTRUCTION}{TEXT_START}{spoken}{TEXT_END}"},
            {"role": "assistant", "content": SPEECH_START},
        ]
        rendered = self.tokenizer.apply_chat_template(
            chat, tokenize=False, continue_final_message=True
        )
        ids = self.tokenizer(rendered, add_special_tokens=False)["input_ids"]
        ids += [self.first_speech_id + c for c in prompt_codes]
        least, most = self.token_bounds(_clean(text))
        most = min(most, self.settings.llasa_max_length - len(ids))
        if most < 1:
            raise AudioError(
                f"the voice prompt and the sentence take {len(ids)} tokens: over LLaSA's "
                f"{self.settings.llasa_max_length}"
            )
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.lm.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=most,
                min_new_tokens=min(least, most),
                do_sample=True,
                temperature=self.settings.llasa_temperature,
                top_p=self.settings.llasa_top_p,
                top_k=self.settings.llasa_top_k,
                eos_token_id=self.end_id,
                pad_token_id=self.end_id,
                logits_processor=LogitsProcessorList([self._speech_only]),
            )
        new = out[0, len(ids) :].tolist()
        if new and new[-1] == self.end_id:
            new = new[:-1]
        else:
            log.info("LLaSA ran to its limit of %d tokens for %r", most, text[:40])
        return [i - self.first_speech_id for i in new]

    def token_bounds(self, text: str) -> tuple[int, int]:
        """The fewest and most speech tokens a sentence of `text` may take."""
        seconds = len(text) / self.settings.llasa_slowest_chars_per_second + _SLACK_SECONDS
        least = int(len(text) / _FASTEST_CHARS_PER_SECOND * self.tokens_per_second)
        return max(1, least), math.ceil(seconds * self.tokens_per_second)

    # -- the cache in object storage

    def dumps(self, conditioning: Any) -> bytes:
        entry = {
            "format": CACHE_FORMAT,
            "codec": self.settings.xcodec2_model,
            "codes": list(conditioning["codes"]),
            "text": conditioning["text"],
        }
        return json.dumps(entry, ensure_ascii=False).encode()

    def loads(self, data: bytes) -> Any:
        try:
            entry = json.loads(data)
            fresh = (entry["format"], entry["codec"]) == (CACHE_FORMAT, self.settings.xcodec2_model)
            codes, text = [int(c) for c in entry["codes"]], str(entry["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StaleConditioning(f"unreadable LLaSA voice prompt: {exc}") from None
        if not fresh or not all(0 <= c < self.speech_tokens for c in codes):
            raise StaleConditioning("the cached voice prompt is of another codec")
        return {"codes": codes, "text": text}


class _SpeechOnly:
    """A logits processor: past the prompt, LLaSA may say speech tokens and the end, nothing
    else (a text token there would be a code the codec cannot decode)."""

    def __init__(self, first: int, count: int, end: int, vocab: int) -> None:
        import torch

        self.mask = torch.full((vocab,), float("-inf"))
        self.mask[first : first + count] = 0.0
        self.mask[end] = 0.0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.mask.device != scores.device:
            self.mask = self.mask.to(scores.device)
        return scores + self.mask[: scores.shape[-1]].to(scores.dtype)


def speech_token_range(tokenizer: Any) -> tuple[int, int]:
    """The id of `<|s_0|>` and how many speech tokens follow it, read from the tokenizer (65,536
    in LLaSA's)."""
    count = sum(1 for token in tokenizer.get_vocab() if _SPEECH_TOKEN.fullmatch(token))
    if count == 0:
        raise RuntimeError("the tokenizer has no speech tokens <|s_0|>…: not a LLaSA model")
    first = _token_id(tokenizer, "<|s_0|>")
    if _token_id(tokenizer, f"<|s_{count - 1}|>") != first + count - 1:
        raise RuntimeError("the tokenizer's speech tokens are not numbered in a row")
    return first, count


def sample_prompt(samples: list[Path], rate: int, seconds: float) -> np.ndarray:
    """Up to `seconds` of the prepared voice samples (WAV files at `rate`), as one prompt."""
    pieces = []
    for path in samples:
        audio, found = read_wav(path.read_bytes())
        if found != rate:
            raise AudioError(f"voice samples must be prepared at {rate} Hz")
        pieces.append(audio)
    return prompt_audio(pieces, rate, seconds)


def prompt_audio(pieces: list[np.ndarray], rate: int, seconds: float) -> np.ndarray:
    """The samples in order, a short pause between them, until `seconds` are filled; the last
    one is cut at its quietest moment before the limit, not in the middle of a word."""
    budget = int(seconds * rate)
    pause = np.zeros(int(_PAUSE_BETWEEN_SAMPLES * rate), dtype=np.float32)
    taken: list[np.ndarray] = []
    for audio in pieces:
        if taken:
            if budget < rate + pause.size:
                break  # under a second left: not worth another voice
            taken.append(pause)
            budget -= pause.size
        if audio.size > budget:
            audio = audio[: quiet_cut(audio, budget, rate)]
        taken.append(audio)
        budget -= audio.size
    return np.concatenate(taken).astype(np.float32) if taken else np.zeros(0, np.float32)


def quiet_cut(audio: np.ndarray, limit: int, rate: int, window_seconds: float = 3.0) -> int:
    """The end of the quietest 20 ms frame (the latest, of equals) in the last `window_seconds`
    before `limit`, or in its last third if that is shorter."""
    frame = max(1, rate // 50)
    start = (limit - min(int(window_seconds * rate), limit // 3)) // frame * frame
    frames = (limit - start) // frame
    if frames < 1:
        return limit
    energy = np.mean(audio[start : start + frames * frame].reshape(frames, frame) ** 2, axis=1)
    quietest = frames - 1 - int(np.argmin(energy[::-1]))
    return start + (quietest + 1) * frame


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", _MARKER.sub(" ", text)).strip()


def _token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or found == tokenizer.unk_token_id:
        raise RuntimeError(f"the tokenizer has no {token}: not a LLaSA model")
    return int(found)


def _vocab_size(lm: Any) -> int:
    return int(lm.get_output_embeddings().out_features)


def _device(settings: SoundSettings) -> str:
    import torch

    if settings.tts_device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.tts_device
