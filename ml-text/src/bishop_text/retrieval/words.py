"""Words as retrieval compares them: case and ё folded, stop words dropped, Snowball stems in
Russian and English, numbers written in words turned into digits.

A question names things in another form than the text ("Гудрайку" for "Гудрайк", "двенадцатого"
for "12"): stems and digits let the two meet, and words every question has ("где", "вы",
"сколько") no longer decide the ranking."""

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_RUSSIAN

from bishop_text.retrieval import numbers

# Runs of letters and runs of digits, apart: "1987г" is "1987" and "г".
_TOKEN = re.compile(r"[^\W\d_]+|\d+")
_CYRILLIC = re.compile(r"[а-я]")
# What people ask with, beside the stock lists (numbers are not stop words here: they become
# digits).
_QUESTION_WORDS = {
    "сколько", "почему", "отчего", "зачем", "какие", "каком", "какую", "каких", "какое",
    "ваш", "ваша", "ваше", "ваши", "вашего", "вашей", "вашем", "вашу", "ваших", "вами", "вам",
    "твой", "твоя", "твое", "твои", "твоего", "твоей", "твоем", "твою", "твоих", "тебе", "тобой",
    "расскажите", "расскажи", "скажите", "скажи", "помните", "помнишь", "правда", "это",
    "какого", "какому", "каким", "какими", "какова", "каков",
    "который", "которая", "которое", "которые", "которого", "которой", "которому", "котором",
    "которую", "которых", "которым", "которыми",
    "свой", "своя", "свое", "свои", "своего", "своей", "своему", "своем", "своих", "своим",
    "самый", "самая", "самое", "самые", "самого", "самой", "самом", "самую", "самых",
}  # fmt: skip
STOP_WORDS = frozenset(
    (set(STOPWORDS_RUSSIAN) | set(STOPWORDS_EN) | _QUESTION_WORDS) - set(numbers.VALUES)
)


def fold(text: str) -> str:
    """Case and ё folded: how words are compared."""
    return text.casefold().replace("ё", "е")


class Words:
    """Text to index terms. Cheap to call; the stemmers cache what they have seen."""

    def __init__(self) -> None:
        self._russian = Stemmer.Stemmer("russian")
        self._english = Stemmer.Stemmer("english")

    def terms(self, text: str) -> list[str]:
        terms: list[str] = []
        run: list[int] = []  # number words in a row, read as one number
        for token in _TOKEN.findall(fold(text)):
            if (value := numbers.VALUES.get(token)) is not None:
                run.append(value)
                continue
            if run:
                terms.append(str(numbers.join(run)))
                run = []
            if token.isdigit():
                terms.append(token.lstrip("0") or "0")
            elif len(token) > 1 and token not in STOP_WORDS:
                terms.append(self.stem(token))
        if run:
            terms.append(str(numbers.join(run)))
        return terms

    def stem(self, word: str) -> str:
        """The Snowball stem of a folded word (Russian for Cyrillic, else English)."""
        stemmer = self._russian if _CYRILLIC.search(word) else self._english
        return stemmer.stemWord(word)


@lru_cache
def words() -> Words:
    return Words()
