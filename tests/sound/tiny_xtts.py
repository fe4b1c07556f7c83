"""A tiny XTTS v2 with random weights, saved like a real download (no hub, no GPU).

Dimensions are as small as XTTS allows: the GPT is one 64-wide layer; the HiFi-GAN decoder and
speaker encoder have fixed sizes. The stop token is suppressed so random weights always
generate exactly `gpt_max_audio_tokens - 3` codes: the audio length is deterministic.
"""

from pathlib import Path

from bishop_sound.synth.torchaudio_compat import ensure_importable

LANGUAGES = ["en", "ru"]
PRESET_SPEAKERS = ["Claribel Dervla", "Другой голос"]


def build(model_dir: Path, seed: int = 0) -> Path:
    ensure_importable()
    import torch
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
    from TTS.tts.models.xtts import Xtts

    model_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab = _write_vocab(model_dir / "vocab.json")
    dim = 64
    args = XttsArgs(
        gpt_layers=1,
        gpt_n_model_channels=dim,
        gpt_n_heads=4,
        decoder_input_dim=dim,
        gpt_max_audio_tokens=16,
        gpt_max_text_tokens=200,
        gpt_max_prompt_tokens=70,
        gpt_num_audio_tokens=66,
        gpt_start_audio_token=64,
        gpt_stop_audio_token=65,
        gpt_number_text_tokens=max(vocab.values()) + 1,
        gpt_start_text_token=vocab["[START]"],
        gpt_stop_text_token=vocab["[STOP]"],
        gpt_use_perceiver_resampler=True,
        tokenizer_file="",
    )
    config = XttsConfig(
        model_args=args, languages=LANGUAGES, temperature=0.75, top_k=50, top_p=0.85
    )
    config.gpt_cond_len, config.gpt_cond_chunk_len, config.max_ref_len = 4, 4, 4
    model = Xtts(config)
    with torch.no_grad():
        model.gpt.mel_head.bias[args.gpt_stop_audio_token] = -1e4
    # Saved before eval(), so the keys are a real checkpoint's; fp16 halves the file.
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"model": state}, model_dir / "model.pth")
    config.save_json(str(model_dir / "config.json"))
    speakers = {
        name: {
            "gpt_cond_latent": torch.randn(1, 32, dim),
            "speaker_embedding": torch.nn.functional.normalize(torch.randn(1, 512, 1), dim=1),
        }
        for name in PRESET_SPEAKERS
    }
    torch.save(speakers, model_dir / "speakers_xtts.pth")
    return model_dir


def _write_vocab(path: Path) -> dict[str, int]:
    """A character-level tokenizer in the `tokenizers` format, with XTTS's special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["[STOP]", "[UNK]", "[SPACE]", "[START]"] + [f"[{lang}]" for lang in LANGUAGES]
    chars = list("abcdefghijklmnopqrstuvwxyz") + [chr(c) for c in range(ord("а"), ord("я") + 1)]
    chars += ["ё", *"0123456789.,!?;:'\"-()"]
    vocab = {token: i for i, token in enumerate(specials + chars)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(path))
    return vocab
