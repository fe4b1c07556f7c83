"""A tiny LLaSA with random weights, saved like real downloads (no hub, no GPU): a 2-layer Llama
whose tokenizer holds LLaSA's markers and a small set of speech tokens `<|s_N|>`, an X-Codec2
whose codebook has as many codes, and a tiny whisper to transcribe voice samples.

The codec keeps the real frame rate (16 kHz, 320 samples a token); everything else is as small
as each config allows. Random weights speak noise; they exercise the real code paths.
"""

from pathlib import Path

from bishop_sound.synth.torchaudio_compat import ensure_importable

LEVELS = [4, 4, 4, 4]  # 256 codes (LLaSA's X-Codec2: eight levels of 4, 65,536 codes)
MARKERS = [
    "<|TEXT_GENERATION_START|>",
    "<|TEXT_GENERATION_END|>",
    "<|TEXT_UNDERSTANDING_START|>",
    "<|TEXT_UNDERSTANDING_END|>",
    "<|SPEECH_GENERATION_START|>",
    "<|SPEECH_GENERATION_END|>",
]
# Llama 3's turn format, without its system preamble.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build(root: Path, seed: int = 0) -> dict:
    """The three model folders under `root`, as SoundSettings arguments."""
    ensure_importable()
    import torch

    torch.manual_seed(seed)
    return {
        "tts_backend": "llasa",
        "llasa_model": str(_llasa(root / "llasa", len(_codes()))),
        "xcodec2_model": str(_xcodec2(root / "xcodec2")),
        "llasa_asr_model": str(_whisper(root / "whisper")),
        "tts_device": "cpu",
    }


def _codes() -> range:
    count = 1
    for level in LEVELS:
        count *= level
    return range(count)


def _byte_level_vocab(specials: list[str]) -> dict[str, int]:
    from tokenizers import pre_tokenizers

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for token in specials:
        vocab[token] = len(vocab)
    return vocab


def _llasa(folder: Path, speech_tokens: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>"]
    specials += ["<|end_header_id|>", "<|eot_id|>", *MARKERS]
    core = Tokenizer(models.BPE(vocab=_byte_level_vocab([]), merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.add_tokens([f"<|s_{n}|>" for n in range(speech_tokens)])
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _xcodec2(folder: Path) -> Path:
    import torch
    from transformers import Xcodec2Config, Xcodec2FeatureExtractor, Xcodec2Model

    semantic = {
        "model_type": "wav2vec2-bert",
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "output_hidden_size": 32,
    }
    config = Xcodec2Config(
        hidden_size=32,  # a multiple of 32: the decoder's group norms
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        encoder_hidden_size=4,
        quantization_dim=64,  # hidden_size + the semantic encoder's
        quantization_levels=LEVELS,
        semantic_model_config=semantic,
    )
    model = Xcodec2Model(config)
    with torch.no_grad():
        # Random projections this small land every frame on the middle code; spread them.
        model.quantizer.project_in.weight.mul_(300.0)
    model.save_pretrained(folder)
    Xcodec2FeatureExtractor(hop_length=config.hop_length).save_pretrained(folder)
    return folder


def _whisper(folder: Path) -> Path:
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    languages = ["<|en|>", "<|ru|>"]
    specials = ["<|endoftext|>", "<|startoftranscript|>", *languages, "<|translate|>"]
    specials += ["<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>"]
    specials += ["<|notimestamps|>"]
    vocab = _byte_level_vocab(specials)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    end, start = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    model = WhisperForConditionalGeneration(
        WhisperConfig(
            vocab_size=len(vocab),
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            num_mel_bins=80,
            max_target_positions=48,
            decoder_start_token_id=start,
            eos_token_id=end,
            pad_token_id=end,
            bos_token_id=end,
        )
    )
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start,
        eos_token_id=end,
        pad_token_id=end,
        no_timestamps_token_id=vocab["<|notimestamps|>"],
        is_multilingual=True,
        lang_to_id={lang: vocab[lang] for lang in languages},
        task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]},
        max_length=48,
    )
    model.save_pretrained(folder)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    ).save_pretrained(folder)
    return folder
