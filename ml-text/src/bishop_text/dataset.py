"""Transcripts to a training dataset: dialogue pairs where the material has them, passages
otherwise; a held-out split for validation loss; a content-addressed version."""

import hashlib
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bishop_text.chat_format import Turn

if TYPE_CHECKING:  # the training code also runs on Kaggle, without the ingest dependencies
    from bishop_text.ingest import Transcript


@dataclass
class Dataset:
    train: list[list[Turn]]
    validation: list[list[Turn]]

    @property
    def version(self) -> str:
        return hashlib.sha256(self.to_jsonl()).hexdigest()[:16]

    def to_jsonl(self) -> bytes:
        rows = [
            {"split": split, "turns": [t.__dict__ for t in example]}
            for split, examples in (("train", self.train), ("validation", self.validation))
            for example in examples
        ]
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()

    @classmethod
    def from_jsonl(cls, data: bytes) -> "Dataset":
        dataset = cls([], [])
        for line in data.decode().splitlines():
            row = json.loads(line)
            turns = [Turn(**t) for t in row["turns"]]
            (dataset.train if row["split"] == "train" else dataset.validation).append(turns)
        return dataset


def build(transcripts: list["Transcript"], validation_share: float = 0.1, seed: int = 0) -> Dataset:
    examples: list[list[Turn]] = []
    for transcript in transcripts:
        if transcript.pairs:
            examples += [
                [Turn("user", p["question"]), Turn("bot", p["answer"])] for p in transcript.pairs
            ]
        else:
            examples += [[Turn("bot", passage)] for passage in transcript.passages]
    if not examples:
        raise ValueError("the materials hold no text to train on")
    random.Random(seed).shuffle(examples)
    held_out = (
        int(len(examples) * validation_share) if len(examples) >= 10 else min(1, len(examples) - 1)
    )
    return Dataset(train=examples[held_out:], validation=examples[:held_out])
