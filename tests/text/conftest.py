from pathlib import Path

import pytest
from bishop_text.dataset import build
from bishop_text.ingest import Transcript
from bishop_text.ingest.clean import chunks
from bishop_text.models import tiny_llama, train_tokenizer

from tests.text.corpus import lecture


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Llama with random weights and a tokenizer trained here: the LoRA profiles' base."""
    folder = tmp_path_factory.mktemp("tiny-base")
    tokenizer = train_tokenizer([lecture(200, seed=s) for s in range(3)], vocab_size=600)
    tiny_llama(tokenizer, hidden=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def dataset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repeated corpus: a few passages many times over, so that a few steps can learn them."""
    passages = chunks(lecture(12), 160) * 10
    path = tmp_path_factory.mktemp("dataset") / "dataset.jsonl"
    path.write_bytes(build([Transcript(text="", passages=passages)]).to_jsonl())
    return path
