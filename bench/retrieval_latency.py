"""Retrieval latency per question over a large avatar: 5,000 passages by default.

The passages are the fidelity corpus's sentences recombined into new passages of its own
sizes; their vectors are the corpus's real ones, repeated (the time a search takes does not
depend on the values). Each question is embedded by the real model, as in a reply: what is
timed is `PassageIndex.search`, the whole of a reply's retrieval.

    uv run python -m bench.retrieval_latency
    uv run python -m bench.retrieval_latency --passages 5000 --embedding none
"""

import argparse
import json
import random
import statistics
import time

import numpy as np
from bishop_text.retrieval import Passage
from bishop_text.retrieval.embeddings import load_embedder
from bishop_text.retrieval.hybrid import PassageIndex

from bench.fidelity import AVATAR, CORPUS, ingest


def main(count: int, embedding: str) -> None:
    transcripts = ingest(CORPUS / "corpus")
    real = [(t.title, p) for t in transcripts.values() for p in t.passages]
    sentences = [s for _, p in real for s in p.replace("\n", " ").split(". ") if s]
    rng = random.Random(0)
    passages = []
    for i in range(count):
        title, model = real[i % len(real)]
        words = 0
        picked = []
        while words < len(model):
            picked.append(rng.choice(sentences))
            words += len(picked[-1]) + 2
        passages.append(Passage(f"m{i % 300}:{i}", ". ".join(picked), title))
    embedder = load_embedder(embedding, "demo")
    vectors = None
    if embedder is not None:
        sample = embedder.passages([p.indexed for p in passages[: len(real)]])
        vectors = np.resize(sample, (count, sample.shape[1]))
    start = time.perf_counter()
    index = PassageIndex(passages, vectors, embedder)
    built = time.perf_counter() - start
    questions = [json.loads(line)["question"] for line in (CORPUS / "questions.jsonl").open()]
    for q in questions[:10]:
        index.search(q, 5, person=AVATAR)  # warm-up
    times = []
    for q in questions:
        start = time.perf_counter()
        index.search(q, 5, person=AVATAR)
        times.append(time.perf_counter() - start)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    name = embedder.name if embedder else "words only"
    print(f"{count} passages ({name}); index built in {built:.2f} s; {len(times)} questions")
    print(f"search p50 {statistics.median(times) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=5000)
    parser.add_argument("--embedding", default="", help="model, folder or 'none' (default: demo's)")
    args = parser.parse_args()
    main(args.passages, args.embedding)
