#!/usr/bin/env python3
"""Validate the fidelity benchmark corpus and questions (stdlib only).

Checks: every question's material exists; every answer occurs verbatim in the
material's indexable text (for Telegram JSON exports: only the messages sent by
the person); reports per-material question counts, character totals, and
(with --cross) other materials that also contain each answer string.
"""

import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"
PERSON = "Михаил Струнин"


def msg_text(t):
    if isinstance(t, str):
        return t
    return "".join(x if isinstance(x, str) else x.get("text", "") for x in t)


def indexable(path):
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(raw)
        return "\n".join(
            msg_text(m.get("text", ""))
            for m in data["messages"]
            if m.get("type") == "message" and m.get("from") == PERSON
        )
    return raw


def main():
    cross = "--cross" in sys.argv
    texts = {p.name: indexable(p) for p in sorted(CORPUS.iterdir()) if p.is_file()}
    raw_total = sum(len(p.read_text(encoding="utf-8")) for p in CORPUS.iterdir() if p.is_file())
    counts = collections.Counter()
    errors = []
    lines = (ROOT / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    seen_q = set()
    for i, line in enumerate(lines, 1):
        row = json.loads(line)
        q, mat, ans = row["question"], row["material"], row["answer"]
        if q in seen_q:
            errors.append(f"line {i}: duplicate question")
        seen_q.add(q)
        if mat not in texts:
            errors.append(f"line {i}: material {mat!r} missing")
            continue
        if ans not in texts[mat]:
            errors.append(f"line {i}: answer {ans!r} not in {mat}")
        if not 1 <= len(ans.split()) <= 4:
            errors.append(f"line {i}: answer {ans!r} has {len(ans.split())} words")
        counts[mat] += 1
        if cross:
            others = [m for m, t in texts.items() if m != mat and ans.lower() in t.lower()]
            if others:
                print(f"  cross: {ans!r} ({mat}) also in {others}")
    print(f"materials: {len(texts)}")
    for m in texts:
        print(f"  {counts[m]:3d} q  {len(texts[m]):6d} indexable chars  {m}")
    print(f"questions: {len(lines)}")
    print(
        f"indexable characters: {sum(len(t) for t in texts.values())}; "
        f"raw file characters: {raw_total}"
    )
    no_q = [m for m in texts if counts[m] < 4]
    if no_q:
        errors.append(f"materials with < 4 questions: {no_q}")
    for e in errors:
        print("ERROR:", e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
