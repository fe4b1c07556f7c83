"""Typos in a question, put right against the avatar's own words.

People type fast: "вертуушки", "леодход", "Гудрйак". A stem that no material has finds nothing
by its words, and the question's other words decide the ranking alone. A Russian word that is
neither in the materials (by its stem) nor in the Russian dictionary (pymorphy3's OpenCorpora
forms) is replaced by the most frequent word of the materials one edit away from it (a letter
deleted, inserted, replaced, or two neighbours swapped; Norvig's corrector). So the corrector
never invents a word the person did not write, and never turns a real word the materials lack
("сбросили", "труда") into one they have ("спросили", "туда")."""

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from bishop_text.retrieval import numbers
from bishop_text.retrieval.words import STOP_WORDS, Words, fold

_LETTERS = re.compile(r"[^\W\d_]+")
_RUSSIAN = re.compile(r"^[а-я]+$")
# Shorter words have too many neighbours one edit away to guess which was meant; longer ones
# than any Russian word are not words (and their neighbours grow with the square of their
# length).
MIN_LETTERS, MAX_LETTERS = 5, 30


class Speller:
    def __init__(self, texts: Iterable[str], words: Words) -> None:
        self._words = words
        self._counts: Counter[str] = Counter()
        for text in texts:
            self._counts.update(_LETTERS.findall(fold(text)))
        self._stems = {words.stem(w) for w in self._counts}
        # Only Russian words are put right, so only Russian letters are tried.
        self._alphabet = "".join(sorted({c for w in self._counts for c in w if "а" <= c <= "я"}))

    def correct(self, text: str) -> str:
        """`text` with each misspelt word replaced (everything else as it was)."""
        return _LETTERS.sub(lambda m: self._word(m.group()), text)

    def _word(self, word: str) -> str:
        folded = fold(word)
        if (
            not MIN_LETTERS <= len(folded) <= MAX_LETTERS
            or not _RUSSIAN.match(folded)
            or folded in STOP_WORDS
            or folded in numbers.VALUES
            or self._words.stem(folded) in self._stems
            or _dictionary().word_is_known(folded)
        ):
            return word
        known = [c for c in self._edits(folded) if c in self._counts]
        return max(known, key=lambda c: (self._counts[c], c)) if known else word

    def _edits(self, word: str) -> set[str]:
        splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
        return {
            *(a + b[1:] for a, b in splits if b),
            *(a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1),
            *(a + c + b[1:] for a, b in splits if b for c in self._alphabet),
            *(a + c + b for a, b in splits for c in self._alphabet),
        }


@lru_cache
def _dictionary() -> Any:
    import pymorphy3

    return pymorphy3.MorphAnalyzer()
