"""Retrieval fidelity: does a reply find the passages of the material that answers it?

The product's own ingest (`extract`, passage packing, embedding) and retrieval
(`passage_index`) run on a fictional Russian person's materials (bench/fidelity_corpus/), and
each question is scored by where its labelled material's first passage comes: top-1, top-3,
top-5, and whether the answer's words are in the top 5 passages at all. The baseline, in the
same run: the retrieval replies used before (bench/fidelity_baseline.py).

    uv run python -m bench.fidelity                         # the demo profile's models
    uv run python -m bench.fidelity --embedding none        # lexical only
    uv run python -m bench.fidelity --reranker <model or folder>
    uv run python -m bench.fidelity --typos 1               # one typo in each question

`--typos N` asks each question as a hurried user might type it: N of its longer words with a
typo each (two letters swapped, one dropped or one doubled; seeded, so every run asks the same).
"""

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bishop_text.ingest import Transcript, extract, title
from bishop_text.ingest.clean import chunks
from bishop_text.ingest.limits import Limits
from bishop_text.retrieval import Passage
from bishop_text.retrieval.embeddings import load_embedder
from bishop_text.retrieval.hybrid import passage_index
from bishop_text.retrieval.rerank import load_reranker

from bench.fidelity_baseline import Bm25

CORPUS = Path(__file__).parent / "fidelity_corpus"
PERSON = "Михаил Струнин"  # the sender name in the chat exports
AVATAR = "Михаил Петрович Струнин"  # the avatar's name
K = 5

Search = Callable[[str], list[Passage]]


def ingest(folder: Path) -> dict[str, Transcript]:
    """Every material's transcript, as the ingest child makes it (without the embedding)."""
    transcripts = {}
    for path in sorted(folder.iterdir()):
        ext = path.suffix.lstrip(".")
        transcript = extract(path, "text", ext, PERSON, "ru", None, Limits.from_settings())  # type: ignore[arg-type]
        transcript.title = title(path.name)
        transcripts[path.name] = transcript
    return transcripts


def with_typos(question: str, typos: int, rng: random.Random) -> str:
    words = question.split()
    longer = [i for i, w in enumerate(words) if len(w) > 5]
    for i in rng.sample(longer, min(len(longer), typos)):
        letters, at = list(words[i]), rng.randrange(1, len(words[i]) - 2)
        kind = rng.choice(["swap", "drop", "double"])
        if kind == "swap":
            letters[at], letters[at + 1] = letters[at + 1], letters[at]
        elif kind == "drop":
            del letters[at]
        else:
            letters.insert(at, letters[at])
        words[i] = "".join(letters)
    return " ".join(words)


def fold(text: str) -> str:
    return " ".join(text.casefold().replace("ё", "е").split())


def score(search: Search, questions: list[dict[str, str]]) -> dict[str, float]:
    top = {1: 0, 3: 0, 5: 0}
    answered = 0
    seconds = []
    for q in questions:
        start = time.perf_counter()
        found = search(q["question"])[:K]
        seconds.append(time.perf_counter() - start)
        materials = [p.material_id for p in found]
        for k in top:
            top[k] += q["material"] in materials[:k]
        answered += any(fold(q["answer"]) in fold(p.text) for p in found)
    n = len(questions)
    return {
        "top1": top[1] / n,
        "top3": top[3] / n,
        "top5": top[5] / n,
        "answer_in_top5": answered / n,
        "query_ms_p50": statistics.median(seconds) * 1000,
    }


def main(embedding: str, reranker_model: str, profile: str, typos: int) -> None:
    questions = [json.loads(line) for line in (CORPUS / "questions.jsonl").open()]
    rng = random.Random(7)
    for q in questions:
        q["question"] = with_typos(q["question"], typos, rng)
    start = time.perf_counter()
    transcripts = ingest(CORPUS / "corpus")
    read_seconds = time.perf_counter() - start
    megabytes = sum(len(t.text.encode()) for t in transcripts.values()) / 2**20

    old = Bm25(
        [
            Passage(f"{name}:{i}", text)
            for name, t in transcripts.items()
            for i, text in enumerate(chunks(t.text))
        ]
    )
    rows = {
        "baseline: hand-written BM25, paragraph chunks": score(
            lambda q: old.search(q, K), questions
        )
    }

    lexical = passage_index(list(transcripts.items()))
    rows["lexical: bm25s, stems, stop words, packed passages"] = score(
        lambda q: lexical.search(q, K, person=AVATAR), questions
    )
    embedder = load_embedder(embedding, profile)
    embed_seconds = 0.0
    if embedder is not None:
        start = time.perf_counter()
        for transcript in transcripts.values():
            transcript.embed(embedder)
        embed_seconds = time.perf_counter() - start
        hybrid = passage_index(list(transcripts.items()), embedder)
        rows[f"hybrid: + {embedder.name}, reciprocal-rank fusion"] = score(
            lambda q: hybrid.search(q, K, person=AVATAR), questions
        )
        reranker = load_reranker(reranker_model, profile)
        if reranker is not None:
            reranked = passage_index(list(transcripts.items()), embedder, reranker)
            rows[f"hybrid + reranker {reranker.name}"] = score(
                lambda q: reranked.search(q, K, person=AVATAR), questions
            )

    passages = sum(len(t.passages) for t in transcripts.values())
    print(
        f"{len(transcripts)} materials, {megabytes:.2f} MB of text, {passages} passages, "
        f"{len(questions)} questions"
    )
    print(
        f"ingest: reading and packing {read_seconds / megabytes:.1f} s/MB, "
        f"embedding {embed_seconds / megabytes:.0f} s/MB"
    )
    print("| retrieval | top-1 | top-3 | top-5 | answer in top-5 | query p50 ms |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['top1']:.3f} | {r['top3']:.3f} | {r['top5']:.3f} | "
            f"{r['answer_in_top5']:.3f} | {r['query_ms_p50']:.1f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--embedding", default="", help="model id, folder, 'none' (default: profile's)"
    )
    parser.add_argument("--reranker", default="", help="model id or folder (default: profile's)")
    parser.add_argument("--profile", default="demo", choices=["demo", "cpu", "gpu"])
    parser.add_argument("--typos", type=int, default=0, help="typos in each question")
    args = parser.parse_args()
    main(args.embedding, args.reranker, args.profile, args.typos)
