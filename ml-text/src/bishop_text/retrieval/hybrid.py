"""One avatar's passages, searchable by words and by meaning at once.

BM25 over stems ranks the passages that share the question's words; the embeddings rank those
that mean the same; reciprocal-rank fusion (Cormack et al., 2009) merges the two rankings
without having to weigh their scores against each other. A reranker, where there is one,
reads the fused candidates again with the question."""

from collections.abc import Sequence

import bm25s
import numpy as np

from bishop_text.ingest import Transcript
from bishop_text.retrieval import Passage
from bishop_text.retrieval.embeddings import Embedder
from bishop_text.retrieval.rerank import Reranker
from bishop_text.retrieval.spelling import Speller
from bishop_text.retrieval.words import words

# The usual constant of reciprocal-rank fusion: how much the first places outweigh the rest.
RRF_K = 60
CANDIDATES = 20  # fused passages the reranker reads
# The embeddings' ranking counts half as much as the words': the bundled small model ranks
# worse alone (top-1 0.61 against 0.75 on the fidelity bench), and at equal weight it pulled
# the fused ranking down (0.746 against 0.761).
DENSE_WEIGHT = 0.5
# A question of fewer terms than this is taken as a follow-up ("а сколько ему было?"): it is
# searched together with the turn before it.
FOLLOW_UP_TERMS = 3


class PassageIndex:
    def __init__(
        self,
        passages: Sequence[Passage],
        vectors: np.ndarray | None = None,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        """`vectors`: the passages' embeddings by `embedder`, one row each (None: no dense
        ranking, unless an embedder is given to compute them now)."""
        self.passages = list(passages)
        self.embedder = embedder
        self.reranker = reranker
        self._words = words()
        self._speller = Speller((p.indexed for p in self.passages), self._words)
        self._bm25: bm25s.BM25 | None = None
        terms = [self._words.terms(p.indexed) for p in self.passages]
        if any(terms):  # bm25s cannot index passages of no terms at all (emoji, stop words)
            self._bm25 = bm25s.BM25()
            self._bm25.index(terms, show_progress=False)
        if vectors is None and embedder is not None and self.passages:
            vectors = embedder.passages([p.indexed for p in self.passages])
        self._vectors = vectors if embedder is not None else None
        if self._vectors is not None and len(self._vectors) != len(self.passages):
            raise ValueError("one vector row per passage")

    def search(self, query: str, k: int = 5, previous: str = "", person: str = "") -> list[Passage]:
        """The `k` passages that best answer `query`, best first; `previous` (the user's turn
        before) gives a short follow-up question what it refers to. The words of `person`'s
        name are not searched for: every material is theirs, so the name only ranks the
        passages that happen to repeat it (on the fidelity bench, top-1 0.76 -> 0.78)."""
        if not self.passages:
            return []
        query = self._speller.correct(query)
        name = set(self._words.terms(person))
        terms = [t for t in self._words.terms(query) if t not in name]
        if previous and len(terms) < FOLLOW_UP_TERMS:
            query = f"{self._speller.correct(previous)}\n{query}"
            terms = [t for t in self._words.terms(query) if t not in name]
        rankings, weights = [self._lexical(terms)], [1.0]
        if self._vectors is not None and self.embedder is not None:
            rankings.append(self._dense(query))
            weights.append(DENSE_WEIGHT)
        fused = fuse(rankings, weights)[: max(k, CANDIDATES) if self.reranker else k]
        if self.reranker is not None and len(fused) > 1:
            scores = self.reranker.scores(query, [self.passages[i].indexed for i in fused])
            fused = [fused[i] for i in np.argsort(-scores, kind="stable")]
        return [self.passages[i] for i in fused[:k]]

    def _lexical(self, terms: list[str]) -> np.ndarray:
        """Passages that share a term with the question, best first."""
        if not terms or self._bm25 is None:
            return np.zeros(0, dtype=np.int64)
        scores = self._bm25.get_scores(terms)
        order = np.argsort(-scores, kind="stable")
        return order[: int(np.count_nonzero(scores > 0))]

    def _dense(self, query: str) -> np.ndarray:
        """Passages with a vector, most similar first."""
        assert self._vectors is not None and self.embedder is not None
        # Not `@`: a BLAS product leaves OpenBLAS's threads spinning for a while after it,
        # and the next question's embedding then ran at a third of its speed (78 ms, not 24).
        similarity = np.einsum("ij,j->i", self._vectors, self.embedder.query(query))
        known = ~np.isnan(similarity)
        order = np.argsort(-np.where(known, similarity, -np.inf), kind="stable")
        return order[: int(np.count_nonzero(known))]


def fuse(rankings: Sequence[Sequence[int]], weights: Sequence[float] | None = None) -> list[int]:
    """Reciprocal-rank fusion: each item scores weight / (RRF_K + its place) in every ranking
    it is in; best first (ties: the lower index first)."""
    arrays = [np.asarray(r, dtype=np.int64) for r in rankings]
    size = max((int(a.max()) + 1 for a in arrays if a.size), default=0)
    scores = np.zeros(size)
    for ranking, weight in zip(arrays, weights or [1.0] * len(arrays), strict=True):
        scores[ranking] += weight / (RRF_K + np.arange(1, ranking.size + 1))
    order = np.argsort(-scores, kind="stable")
    return order[: int(np.count_nonzero(scores))].tolist()


def passage_index(
    transcripts: Sequence[tuple[str, Transcript]],
    embedder: Embedder | None = None,
    reranker: Reranker | None = None,
) -> PassageIndex:
    """The index of an avatar's materials, from (material id, transcript) pairs. Passages with
    no stored vectors of the embedder's model (transcripts from before embeddings, another
    model, embedding out of time) are found by their words only: a reply never waits for a
    material to be embedded; reprocessing the material embeds it."""
    passages: list[Passage] = []
    blocks: list[np.ndarray] = []
    for material_id, transcript in transcripts:
        found = [
            Passage(f"{material_id}:{i}", text, transcript.title)
            for i, text in enumerate(transcript.passages)
        ]
        passages += found
        if embedder is not None and found:
            stored = transcript.passage_vectors(embedder.name)
            if stored is None:
                stored = np.zeros((0, 0), np.float32)
            blocks.append(stored)
            # Passages with no vector (embedding ran out of time, or another model made them)
            # are found by their words alone: a reply never waits for a material's embedding.
            blocks.append(np.full((len(found) - len(stored), 0), np.nan, np.float32))
    vectors = _rows(blocks)
    return PassageIndex(passages, vectors, embedder if vectors is not None else None, reranker)


def _rows(blocks: list[np.ndarray]) -> np.ndarray | None:
    """The blocks as one matrix; rows of no vector are NaN (None: no vectors at all)."""
    width = max((b.shape[1] for b in blocks), default=0)
    if width == 0:
        return None
    return np.concatenate(
        [b if b.shape[1] == width else np.full((len(b), width), np.nan, np.float32) for b in blocks]
    )
