"""The retrieval replies used before hybrid search, kept as the fidelity bench's baseline: a
hand-written BM25 over lower-cased words (no stems, no stop words), over passages cut at every
paragraph end (`chunks`)."""

import math
import re
from collections import Counter

from bishop_text.retrieval import Passage

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if len(w) > 1]


class Bm25:
    def __init__(self, passages: list[Passage], k1: float = 1.5, b: float = 0.75) -> None:
        self.passages = passages
        self.k1, self.b = k1, b
        self.docs = [Counter(words(p.text)) for p in passages]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.average = sum(self.lengths) / len(self.lengths) if self.lengths else 0.0
        frequency = Counter(w for d in self.docs for w in d)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in frequency.items()}

    def search(self, query: str, k: int = 3) -> list[Passage]:
        terms = [w for w in set(words(query)) if w in self.idf]
        scored = []
        for i, doc in enumerate(self.docs):
            score = 0.0
            for w in terms:
                tf = doc.get(w, 0)
                if tf:
                    norm = tf + self.k1 * (
                        1 - self.b + self.b * self.lengths[i] / (self.average or 1)
                    )
                    score += self.idf[w] * tf * (self.k1 + 1) / norm
            if score > 0:
                scored.append((score, i))
        scored.sort(reverse=True)
        return [self.passages[i] for _, i in scored[:k]]
