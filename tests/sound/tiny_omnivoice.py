"""A tiny OmniVoice with random weights, saved like the real download (no hub, no GPU): the
checkpoint folder holds the OmniVoice model (a 2-layer Qwen3 with audio embeddings and heads),
its text tokenizer with OmniVoice's markers, and `audio_tokenizer/`, a Higgs Audio V2 codec
(a DAC and a HuBERT, as transformers builds them). A tiny whisper transcribes voice samples.

The codec keeps the real rates (24 kHz, 960 samples a frame, 25 frames a second) and the real
8 codebooks of 1,024 codes; everything else is as small as each config allows. Random weights
speak noise; they exercise the real code paths.
"""

from pathlib import Path

from bishop_sound.synth.omnivoice import import_omnivoice
from bishop_sound.synth.torchaudio_compat import ensure_importable

from tests.sound.tiny_llasa import _byte_level_vocab, _whisper

# The tokens OmniVoice's training adds to Qwen3's tokenizer (omnivoice.training.builder).
MARKERS = [
    "<|denoise|>",
    "<|lang_start|>",
    "<|lang_end|>",
    "<|instruct_start|>",
    "<|instruct_end|>",
    "<|text_start|>",
    "<|text_end|>",
]
HOP = 960  # 24 kHz / 25 frames a second, as the real codec
CODEBOOKS = 8


def build(root: Path, seed: int = 0) -> dict:
    """The model folders under `root`, as SoundSettings arguments."""
    ensure_importable()
    import torch

    torch.manual_seed(seed)
    folder = root / "omnivoice"
    _omnivoice(folder)
    _codec(folder / "audio_tokenizer")
    return {
        "tts_backend": "omnivoice",
        "omnivoice_model": str(folder),
        "omnivoice_asr_model": str(_whisper(root / "whisper")),
        "tts_device": "cpu",
    }


def _omnivoice(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3Config

    core = Tokenizer(models.BPE(vocab=_byte_level_vocab([]), merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": MARKERS})
    llm = Qwen3Config(
        # OmniVoice embeds every position as text before it picks the audio embeddings, audio
        # codes and the mask (1,024) included: the text vocabulary must be larger than that.
        vocab_size=max(len(tokenizer), 2048),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    omnivoice = import_omnivoice()
    config = omnivoice.OmniVoiceConfig(
        audio_vocab_size=1025,  # 1,024 codes and the mask
        audio_mask_id=1024,
        num_audio_codebook=CODEBOOKS,
        llm_config=llm,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    omnivoice.OmniVoice(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _codec(folder: Path) -> Path:
    import torch
    from transformers import (
        DacFeatureExtractor,
        HiggsAudioV2TokenizerConfig,
        HiggsAudioV2TokenizerModel,
    )

    config = HiggsAudioV2TokenizerConfig(
        sample_rate=24000,
        codebook_size=1024,
        codebook_dim=16,
        target_bandwidths=[0.5, 1, 1.5, 2],  # 2 kbps at 25 frames, 10 bits: 8 codebooks
        acoustic_model_config={
            "model_type": "dac",
            "encoder_hidden_size": 2,  # 64 channels after five doublings
            "decoder_hidden_size": 32,  # down to one channel after five halvings
            "downsampling_ratios": [8, 5, 4, 2, 3],
            "upsampling_ratios": [8, 5, 4, 2, 3],
        },
        semantic_model_config={
            "model_type": "hubert",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "conv_dim": [16] * 7,
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2,
        },
    )
    assert config.hop_length == HOP and config.num_quantizers == CODEBOOKS
    model = HiggsAudioV2TokenizerModel(config)
    with torch.no_grad():
        # Untrained codebooks are all zeros (every frame would be code 0) and the projections
        # into them tiny: give them a trained codebook's spread.
        for quantizer in model.quantizer.quantizers:
            quantizer.project_in.weight.normal_(0.0, config.hidden_size**-0.5)
            quantizer.codebook.embed.normal_(0.0, 0.5)
            quantizer.codebook.embed_avg.copy_(quantizer.codebook.embed)
    model.save_pretrained(folder)
    DacFeatureExtractor(sampling_rate=24000, hop_length=HOP).save_pretrained(folder)
    return folder
