"""A reply does not end before it holds readable text: a model that would stop after only
control bytes, whitespace or halves of characters is kept going (within `max_new_tokens`)."""

from pathlib import Path
from typing import Any

import pytest
import torch
from bishop_contracts.text import clean_generated
from bishop_text import scheduler
from bishop_text.chat_format import Turn
from bishop_text.generate import Engine, Version
from bishop_text.models import tiny_llama, train_tokenizer
from bishop_text.settings import TextSettings

from tests.text.scheduled import Biased, Recording, reply, scheduler_for

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


def _reply(tokenizer: Any, model: Any, **sampling: Any) -> tuple[str, list[int]]:
    """The reply's text, and the tokens generated before its last one."""
    recording = Recording(model)
    scheduler = scheduler_for(tokenizer, recording, **{"max_new_tokens": 20, **sampling})
    pieces, text = reply(scheduler, TURNS)
    assert text == "".join(pieces) == clean_generated(text)
    return text, recording.fed


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
    text, generated = _reply(byte_tokenizer, model)
    assert text.strip() and not text.isspace()
    # It stopped at the first chance: the junk, the first readable token, then the end token
    # (chosen, so never fed back).
    assert generated == wanted


def test_without_the_hold_the_same_model_gives_an_empty_reply(
    byte_tokenizer: Any,
    junk_first: tuple[Any, list[int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the hold prevents: the setup above, with every text taken for readable."""
    monkeypatch.setattr(scheduler, "readable", lambda *_: True)
    model, wanted = junk_first
    text, generated = _reply(byte_tokenizer, model)
    assert clean_generated(text).strip() == ""
    # Ended after junk alone (as many tokens as min_new_tokens asks for).
    assert generated == wanted[:1]


def test_a_model_that_writes_nothing_readable_stops_at_its_budget(
    byte_tokenizer: Any, tmp_path: Path
) -> None:
    """Bounded as always: the reply ends empty after `max_new_tokens`, and fails as before."""
    t = byte_tokenizer
    model = _bigram(t, [_id(t, "\n"), _id(t, "\x01"), _id(t, "\t"), _id(t, "\x02")])
    # "\n" -> "\x01" -> "\t" -> "\x02" -> ... the end token outranks them all; from "\x02"
    # nothing but the (held) end token is preferred, so the rest are ties at zero.
    text, generated = _reply(t, model, max_new_tokens=12)
    assert clean_generated(text).strip() == ""
    assert len(generated) == 11 and t.eos_token_id not in generated  # the 12th ended it


def _empty_before_budget(tmp_path: Path, samples: int) -> int:
    """Replies that ended empty before their budget of 8 tokens (an empty reply at the budget
    is a model that wrote nothing readable at all, which the hold cannot help)."""
    engine = Engine(TextSettings(_env_file=None, profile="demo", cache_dir=tmp_path, device="cpu"))
    runner = engine._select(Version(None, None, "base"), set())
    # The end token made likelier at every step, so that junk-then-end replies are common.
    biased = Biased(runner.model, runner.tokenizer.eos_token_id, 3.0)
    sampled = scheduler_for(runner.tokenizer, biased, max_new_tokens=8, temperature=0.7)
    torch.manual_seed(0)
    empty = 0
    for _ in range(samples):
        before = len(biased.fed)
        text = reply(sampled, TURNS)[1]
        ended_early = len(biased.fed) - before < 7  # the 8th token is chosen, never fed
        empty += not clean_generated(text).strip() and ended_early
    return empty


def test_a_sampled_untrained_demo_model_never_replies_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case that lost replies: few tokens, sampled, from the untrained demo model."""
    assert _empty_before_budget(tmp_path, 40) == 0
    monkeypatch.setattr(scheduler, "readable", lambda *_: True)
    assert _empty_before_budget(tmp_path, 40) > 0  # what happens without the hold
