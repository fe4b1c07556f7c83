"""A reply does not end before it holds readable text: a model that would stop after only
control bytes, whitespace or halves of characters is kept going (within `max_new_tokens`)."""

from pathlib import Path
from typing import Any

import pytest
import torch
from bishop_contracts.text import clean_generated
from bishop_text import generate
from bishop_text.chat_format import Turn
from bishop_text.generate import Engine
from bishop_text.models import tiny_llama, train_tokenizer
from bishop_text.settings import TextSettings

TURNS = [Turn("system", "Ты Анна."), Turn("user", "Привет!")]


@pytest.fixture(scope="module")
def byte_tokenizer() -> Any:
    return train_tokenizer([])


def _id(tokenizer: Any, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0]


def _bigram(tokenizer: Any, chain: list[int], *, loop: bool = False) -> Any:
    """A real tiny Llama rigged into a bigram: after any token its end-of-sequence token is the
    most likely next one; second to it, token `chain[i]` is followed by `chain[i + 1]` (and the
    last by the first again when `loop`)."""
    size = len(tokenizer)
    hidden = -(-size // 8) * 8
    model = tiny_llama(tokenizer, hidden=hidden, layers=1, heads=4)
    with torch.no_grad():
        # One-hot embeddings; the layer adds nothing to the residual stream, so the last
        # hidden state is the (normalised) one-hot of the last token.
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, :size].copy_(torch.eye(size))
        layer = model.model.layers[0]
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
        head = model.lm_head.weight  # [next token, last token]
        head.zero_()
        head[tokenizer.eos_token_id, :size] = 1.0
        follows = list(zip(chain, chain[1:] + chain[:1] if loop else chain[1:], strict=False))
        for last, following in follows:
            head[following, last] = 0.5
    model.eval()
    return model


class Recording:
    """The model, with the ids it generated kept."""

    def __init__(self, model: Any) -> None:
        self.model, self.device = model, model.device
        self.generated: list[int] = []

    def generate(self, **kwargs: Any) -> Any:
        out = self.model.generate(**kwargs)
        self.generated = out[0, kwargs["input_ids"].shape[1] :].tolist()
        return out


def _reply(tmp_path: Path, tokenizer: Any, model: Any, **settings: Any) -> tuple[str, list[int]]:
    engine = Engine(
        TextSettings(
            _env_file=None,
            **{
                "profile": "demo",
                "cache_dir": tmp_path,
                "device": "cpu",
                "max_new_tokens": 20,
                "temperature": 0.0,
                **settings,
            },
        )
    )
    recording = Recording(model)
    pieces: list[str] = []
    text = engine._stream(tokenizer, recording, TURNS, pieces.append)
    assert text == "".join(pieces) == clean_generated(text)
    return text, recording.generated


@pytest.fixture(scope="module")
def junk_first(byte_tokenizer: Any) -> tuple[Any, list[int]]:
    """After the prompt ("...bot\\n"): two control bytes, a space, half of a two-byte letter,
    then a readable letter; the end token outranks each of them."""
    t = byte_tokenizer
    junk = [_id(t, "\x01"), _id(t, "\x07"), _id(t, " "), _id(t, "д")]
    readable = _id(t, "a")
    chain = [_id(t, "\n"), *junk, readable]
    return _bigram(t, chain), chain[1:]


def test_the_reply_goes_on_until_it_is_readable(
    byte_tokenizer: Any, junk_first: tuple[Any, list[int]], tmp_path: Path
) -> None:
    model, wanted = junk_first
    text, generated = _reply(tmp_path, byte_tokenizer, model)
    assert text.strip() and not text.isspace()
    # It stopped at the first chance: the junk, the first readable token, the end token.
    assert generated == [*wanted, byte_tokenizer.eos_token_id]
    assert len(generated) < 20


def test_without_the_hold_the_same_model_gives_an_empty_reply(
    byte_tokenizer: Any,
    junk_first: tuple[Any, list[int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the hold prevents: the setup above, with the processor left out."""
    from transformers import LogitsProcessorList

    monkeypatch.setattr(generate, "_logits_processors", lambda *_: LogitsProcessorList())
    model, wanted = junk_first
    text, generated = _reply(tmp_path, byte_tokenizer, model)
    assert clean_generated(text).strip() == ""
    # Ended after junk alone (as many tokens as min_new_tokens asks for).
    assert generated[-1] == byte_tokenizer.eos_token_id and len(generated) <= 2
    assert generated[:-1] == wanted[: len(generated) - 1]


def test_a_model_that_writes_nothing_readable_stops_at_its_budget(
    byte_tokenizer: Any, tmp_path: Path
) -> None:
    """Bounded as always: the reply ends empty after `max_new_tokens`, and fails as before."""
    t = byte_tokenizer
    model = _bigram(t, [_id(t, "\n"), _id(t, "\x01"), _id(t, "\t"), _id(t, "\x02")])
    # "\n" -> "\x01" -> "\t" -> "\x02" -> ... the end token outranks them all; from "\x02"
    # nothing but the (held) end token is preferred, so the rest are ties at zero.
    text, generated = _reply(tmp_path, t, model, max_new_tokens=12)
    assert clean_generated(text).strip() == ""
    assert len(generated) == 12 and t.eos_token_id not in generated


def _empty_replies(engine: Engine, samples: int) -> int:
    tokenizer, model = engine._select(generate.Version(None, None, "base"))
    # The end token made likelier at every step, so that junk-then-end replies are common.
    biased = _EosBias(model, tokenizer.eos_token_id, 3.0)
    torch.manual_seed(0)
    replies = [engine._stream(tokenizer, biased, TURNS, lambda _: None) for _ in range(samples)]
    return sum(not clean_generated(r).strip() for r in replies)


def test_a_sampled_untrained_demo_model_never_replies_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case that lost replies: few tokens, sampled, from the untrained demo model."""
    engine = Engine(
        TextSettings(
            _env_file=None,
            profile="demo",
            cache_dir=tmp_path,
            device="cpu",
            max_new_tokens=8,
            temperature=0.7,
        )
    )
    assert _empty_replies(engine, 40) == 0
    from transformers import LogitsProcessorList

    monkeypatch.setattr(generate, "_logits_processors", lambda *_: LogitsProcessorList())
    assert _empty_replies(engine, 40) > 0  # what happens without the hold


class _EosBias:
    """The model, with its end-of-sequence logit raised by `bias` at every step."""

    def __init__(self, model: Any, eos: int, bias: float) -> None:
        self.model, self.device, self.eos, self.bias = model, model.device, eos, bias

    def generate(self, **kwargs: Any) -> Any:
        from transformers import LogitsProcessorList

        def raise_eos(_: Any, scores: Any) -> Any:
            scores[:, self.eos] += self.bias
            return scores

        extra = LogitsProcessorList([raise_eos, *kwargs.pop("logits_processor", [])])
        return self.model.generate(logits_processor=extra, **kwargs)


def test_every_stop_token_is_held_for_each_sequence(byte_tokenizer: Any) -> None:
    t = byte_tokenizer
    stops = [t.eos_token_id, t.pad_token_id]
    hold = generate.ReadableBeforeEnd(t, prompt_length=1, stop_ids=stops)
    junk, readable = _id(t, "\x01"), _id(t, "a")
    ids = torch.tensor([[0, junk, junk], [0, junk, readable]])
    scores = hold(ids, torch.zeros(2, len(t)))
    assert scores[0, stops].eq(float("-inf")).all() and scores[1].isfinite().all()
    assert scores[0].isfinite().sum() == len(t) - len(stops)
