"""Models built from configs for the offline `demo` profile: a tiny Llama, its tokenizer, and a
tiny whisper. Random weights until trained: they exercise the real code paths, not quality."""

from pathlib import Path

from bishop_text.chat_format import BOS, EOS

SPECIAL_TOKENS = [BOS, EOS, "<pad>", "<unk>"]


def train_tokenizer(texts: list[str], vocab_size: int = 2000):  # type: ignore[no-untyped-def]
    """A byte-level BPE trained on `texts` (with no texts: bytes only), as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts or [""], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token="<pad>",
        unk_token="<unk>",
    )


def tiny_llama(tokenizer, *, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0):  # type: ignore[no-untyped-def]
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        # Larger than Llama's 0.02: with near-uniform random logits, LoRA (which leaves lm_head
        # alone) can barely move the loss of an untrained base.
        initializer_range=0.1,
    )
    return LlamaForCausalLM(config)


def demo_base(folder: Path) -> Path:
    """The demo profile's base model (an untrained tiny Llama with a byte-level tokenizer),
    built once into `folder`: what an avatar speaks with before its first training."""
    if not (folder / "config.json").exists():
        tokenizer = train_tokenizer([])
        tiny_llama(tokenizer).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def demo_whisper(folder: Path) -> Path:
    """A tiny multilingual whisper with random weights, saved as a checkpoint `load_model` reads."""
    path = folder / "whisper-demo.pt"
    if not path.exists():
        import torch
        from whisper.model import ModelDimensions, Whisper

        torch.manual_seed(0)
        dims = ModelDimensions(
            n_mels=80,
            n_audio_ctx=1500,
            n_audio_state=64,
            n_audio_head=1,
            n_audio_layer=1,
            n_vocab=51865,
            n_text_ctx=448,
            n_text_state=64,
            n_text_head=1,
            n_text_layer=1,
        )
        folder.mkdir(parents=True, exist_ok=True)
        model = Whisper(dims)
        # Whisper leaves this parameter uninitialised (torch.empty): random memory gives NaNs.
        torch.nn.init.normal_(model.decoder.positional_embedding, std=0.01)
        torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path
