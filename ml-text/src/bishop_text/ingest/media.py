"""Speech to text: the sound of an audio or video file, decoded by bishop_infra.audio (the bundled
ffmpeg, shared with the sound worker), goes to whisper as samples."""

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bishop_infra.audio import AudioError, decode

from bishop_text.ingest.errors import MaterialError

log = logging.getLogger("bishop.text")
SAMPLE_RATE = 16000  # whisper's


class Transcriber:
    """One whisper model per worker, loaded on first use; calls are serialised.

    `model`: a size name or a checkpoint file, or what makes one when it is first needed (the
    demo's, built on first use)."""

    def __init__(
        self, model: str | Callable[[], str], device: str = "cpu", max_tokens: int = 224
    ) -> None:
        self._model_name = model
        self.device = device
        self.max_tokens = max_tokens  # per 30-second window; whisper's default is 224
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        if callable(self._model_name):
            self._model_name = self._model_name()
        return self._model_name

    def _load(self) -> Any:
        if self._model is None:
            if _faster_whisper_usable(self.model_name):
                from faster_whisper import WhisperModel

                compute = "int8" if self.device == "cpu" else "float16"
                self._model = WhisperModel(
                    self.model_name, device=self.device, compute_type=compute
                )
            else:
                import whisper

                self._model = whisper.load_model(self.model_name, device=self.device)
            log.info(
                "whisper %s loaded on %s (%s)",
                self.model_name,
                self.device,
                type(self._model).__module__,
            )
        return self._model

    def transcribe_audio(self, audio: np.ndarray, language: str | None) -> str:
        if audio.size < SAMPLE_RATE // 10:
            raise MaterialError("the recording has no audio")
        with self._lock:
            model = self._load()
            if type(model).__module__.startswith("faster_whisper"):
                segments, _ = model.transcribe(
                    audio, language=language, beam_size=1, temperature=0.0
                )
                return " ".join(segment.text.strip() for segment in segments).strip()
            result = model.transcribe(
                audio,
                language=language,
                fp16=False,
                temperature=0.0,
                condition_on_previous_text=False,
                # Give up on a window rather than retry it at higher temperatures: a slow
                # worker is worse than a missed mumble.
                compression_ratio_threshold=None,
                logprob_threshold=None,
                no_speech_threshold=None,
                sample_len=self.max_tokens,
            )
        return str(result["text"]).strip()

    def transcribe_file(self, path: Path, language: str | None, *, video: bool) -> str:
        # `video` stays for the callers' sake: ffmpeg takes a video's sound track like audio.
        return self.transcribe_audio(load_audio(path), language)


def _faster_whisper_usable(model: str) -> bool:
    """faster-whisper, when installed, for named models (a checkpoint file is openai-whisper's)."""
    if Path(model).suffix == ".pt":
        return False
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False
    return True


def load_audio(path: Path) -> np.ndarray:
    """The file's sound track (audio or video) as whisper's input: mono float32 at 16 kHz."""
    # whisper's own load_audio runs a system `ffmpeg`; samples need none.
    try:
        return decode(path, SAMPLE_RATE)
    except AudioError as exc:
        raise MaterialError(str(exc)) from None
