"""Streamed replies never carry a cut character, NUL or a control character, and their pieces
add up to the reply."""

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from bishop_contracts.text import clean_generated
from bishop_text.chat_format import Turn
from bishop_text.generate import Detokenizer, Engine, Version
from bishop_text.models import tiny_llama, train_tokenizer
from bishop_text.settings import TextSettings

from tests.text.scheduled import Recording, Scripted, reply, scheduler_for

UNCLEAN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")
TURNS = [Turn("system", "Ты Анна."), Turn("user", "Привет!")]


@pytest.fixture(scope="module")
def byte_tokenizer() -> Any:
    """Bytes only, like the demo model's: every Cyrillic letter is two tokens, an emoji four."""
    return train_tokenizer([])


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _engine(tmp_path: Path, **overrides: Any) -> Engine:
    settings = {
        "profile": "demo",
        "cache_dir": tmp_path,
        "device": "cpu",
        "max_new_tokens": 40,
        "temperature": 0.0,
    }
    return Engine(TextSettings(_env_file=None, **{**settings, **overrides}))


def test_split_characters_are_held_until_complete(byte_tokenizer: Any) -> None:
    text = "Привет, 😀!\r\nНовая строка\r"
    ids = _ids(byte_tokenizer, text)
    assert byte_tokenizer.decode(ids[:1]) == "\ufffd"  # "П" alone is a cut character
    detokenizer = Detokenizer(byte_tokenizer)
    pieces = [detokenizer.push([i]) for i in ids] + [detokenizer.finish()]
    assert not [p for p in pieces if UNCLEAN.search(p)]
    assert "".join(pieces) == "Привет, 😀!\nНовая строка\n"
    assert "П" in pieces and "😀" in pieces  # each sent whole, as soon as it is complete


def test_bytes_that_never_form_a_character_are_dropped(byte_tokenizer: Any) -> None:
    lead, tail = _ids(byte_tokenizer, "д")  # a two-byte letter
    ids = [lead, *_ids(byte_tokenizer, "a"), tail, tail, *_ids(byte_tokenizer, "b\x00"), lead]
    assert byte_tokenizer.decode(ids) == "\ufffda\ufffd\ufffdb\x00\ufffd"
    detokenizer = Detokenizer(byte_tokenizer)
    pieces = [detokenizer.push([i]) for i in ids] + [detokenizer.finish()]
    assert "".join(pieces) == "ab"


def test_the_engine_streams_clean_pieces_that_add_up(byte_tokenizer: Any, tmp_path: Path) -> None:
    raw = "До\x00бр\x07ый\r\nдень 😀"
    ids = _ids(byte_tokenizer, raw)
    ids = [*ids[:3], ids[2], *ids[3:]]  # and a lead byte that nothing completes
    model = Scripted(tiny_llama(byte_tokenizer), ids, byte_tokenizer.eos_token_id)
    pieces, text = reply(scheduler_for(byte_tokenizer, model), TURNS)
    assert all(pieces) and not [p for p in pieces if UNCLEAN.search(p)]
    assert text == "".join(pieces) == "Добрый\nдень 😀"


def test_the_demo_model_streams_clean_text(tmp_path: Path) -> None:
    """The untrained demo model samples bytes at random: the case that lost replies."""
    runner = _engine(tmp_path)._select(Version(None, None, "base"), set())
    recording = Recording(runner.model)
    scheduler = scheduler_for(runner.tokenizer, recording, temperature=1.0, max_new_tokens=80)
    torch.manual_seed(0)
    pieces, text = reply(scheduler, TURNS)
    # All the generated tokens but the last were fed back: the text starts with theirs.
    generated = runner.tokenizer.decode(recording.fed, skip_special_tokens=True)
    assert UNCLEAN.search(generated)  # the model did emit cut characters or control bytes
    assert all(pieces) and not [p for p in pieces if UNCLEAN.search(p)]
    assert text == "".join(pieces)
    assert text.startswith(clean_generated(generated)[:-1])
    assert len(text) > 10
