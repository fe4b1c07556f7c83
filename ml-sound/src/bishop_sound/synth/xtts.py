"""Coqui XTTS v2 (the maintained `coqui-tts` package): voices cloned from the avatar's sample."""

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from bishop_sound.audio import AudioError, read_wav
from bishop_sound.settings import SoundSettings
from bishop_sound.synth.base import Synthesizer
from bishop_sound.synth.torchaudio_compat import ensure_importable

log = logging.getLogger("bishop.sound")
XTTS_V2 = "tts_models/multilingual/multi-dataset/xtts_v2"


# XTTS names Mandarin "zh-cn"; avatars say "zh".
_XTTS_CODES = {"zh": "zh-cn"}
_AVATAR_CODES = {v: k for k, v in _XTTS_CODES.items()}


class XttsSynthesizer(Synthesizer):
    name = "xtts"
    input_rate = 22050  # what XTTS's conditioning expects
    max_chars = 180  # XTTS's limit for Russian is 182 characters per call

    def __init__(self, model: Any, config: Any, device: str, preset_speaker: str) -> None:
        self.model = model
        self.config = config
        self.device = device
        self.sample_rate = int(config.audio.output_sample_rate)
        self.preset_speaker = preset_speaker

    @classmethod
    def load(cls, settings: SoundSettings) -> "XttsSynthesizer":
        os.environ.setdefault("COQUI_TOS_AGREED", "1")
        ensure_importable()
        import torch
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        model_dir = settings.xtts_model_dir or _download()
        config = XttsConfig()
        config.load_json(str(model_dir / "config.json"))
        model = Xtts(config)
        model.load_checkpoint(
            config,
            checkpoint_dir=str(model_dir),
            vocab_path=str(model_dir / "vocab.json"),
            use_deepspeed=False,
            eval=True,
        )
        device = settings.tts_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device)
        log.info("XTTS loaded from %s on %s", model_dir, device)
        return cls(model, config, device, settings.xtts_preset_speaker)

    @property
    def languages(self) -> list[str]:  # type: ignore[override]  # a property here
        return [_AVATAR_CODES.get(code, code) for code in self.config.languages]

    def conditioning(self, samples: list[Path]) -> Any:
        import torch

        audios, embeddings = [], []
        with torch.inference_mode():
            for path in samples:
                audio, rate = read_wav(path.read_bytes())
                tensor = (
                    torch.from_numpy(audio[: rate * int(self.config.max_ref_len)])
                    .unsqueeze(0)
                    .to(self.device)
                )
                embeddings.append(self.model.get_speaker_embedding(tensor, rate))
                audios.append(tensor)
            latent = self.model.get_gpt_cond_latents(
                torch.cat(audios, dim=-1),
                self.input_rate,
                length=self.config.gpt_cond_len,
                chunk_length=self.config.gpt_cond_chunk_len,
            )
            embedding = torch.stack(embeddings).mean(dim=0)
        return {"gpt_cond_latent": latent, "speaker_embedding": embedding}

    def preset(self) -> Any:
        manager = self.model.speaker_manager
        if manager is None or not manager.speakers:
            raise AudioError("this XTTS model has no preset voices (speakers_xtts.pth is missing)")
        name = (
            self.preset_speaker
            if self.preset_speaker in manager.speakers
            else next(iter(manager.speakers))
        )
        speaker = manager.speakers[name]
        return {
            "gpt_cond_latent": speaker["gpt_cond_latent"].to(self.device),
            "speaker_embedding": speaker["speaker_embedding"].to(self.device),
        }

    def synthesize(self, text: str, language: str, conditioning: Any) -> np.ndarray:
        import torch

        if language not in self.languages:
            raise AudioError(
                f"XTTS does not speak {language!r}; it speaks {', '.join(self.languages)}"
            )
        with torch.inference_mode():
            out = self.model.inference(
                text,
                _XTTS_CODES.get(language, language),
                conditioning["gpt_cond_latent"],
                conditioning["speaker_embedding"],
                enable_text_splitting=False,
            )
        wav = out["wav"]
        audio = wav.cpu().numpy() if hasattr(wav, "cpu") else np.asarray(wav)
        return audio.astype(np.float32)

    def dumps(self, conditioning: Any) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in conditioning.items()}, buffer)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import torch

        loaded = torch.load(io.BytesIO(data), weights_only=True)
        return {k: v.to(self.device) for k, v in loaded.items()}


def _download() -> Path:
    """XTTS v2 from the hub into TTS_HOME (the user's machine, once)."""
    from TTS.utils.manage import ModelManager

    model_path, _, _ = ModelManager().download_model(XTTS_V2)
    return Path(model_path)
