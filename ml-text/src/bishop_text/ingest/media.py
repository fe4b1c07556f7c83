"""Speech to text: audio through whisper's own decoder, video's sound track through moviepy."""

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bishop_text.ingest.errors import MaterialError

log = logging.getLogger("bishop.text")
SAMPLE_RATE = 16000  # whisper's


class Transcriber:
    """One whisper model per worker, loaded on first use; calls are serialised."""

    def __init__(self, model: str, device: str = "cpu", max_tokens: int = 224) -> None:
        self.model_name = model
        self.device = device
        self.max_tokens = max_tokens  # per 30-second window; whisper's default is 224
        self._model: Any = None
        self._lock = threading.Lock()

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
        audio = video_audio(path) if video else load_audio(path)
        return self.transcribe_audio(audio, language)


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
    import whisper

    try:
        return whisper.load_audio(str(path), sr=SAMPLE_RATE)
    except RuntimeError as exc:
        if "does not contain any stream" in str(exc):
            raise MaterialError("the file has no audio track") from None
        raise MaterialError(
            "the audio could not be decoded (corrupt or unsupported format)"
        ) from None


def video_audio(path: Path) -> np.ndarray:
    from moviepy import VideoFileClip

    try:
        clip = VideoFileClip(str(path))
    except (OSError, KeyError, IndexError) as exc:
        raise MaterialError("the video could not be read (corrupt or unsupported format)") from exc
    try:
        if clip.audio is None:
            raise MaterialError("the video has no audio track")
        with tempfile.TemporaryDirectory(prefix="bishop-video-") as tmp:
            wav = Path(tmp) / "audio.wav"
            clip.audio.write_audiofile(str(wav), fps=SAMPLE_RATE, nbytes=2, logger=None)
            return load_audio(wav)
    finally:
        clip.close()
