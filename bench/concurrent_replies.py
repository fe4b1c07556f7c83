"""Many conversations at once: replies for distinct avatars, each with its own LoRA adapter on
one base, generated one at a time and together (the generation scheduler's batches).

    uv run python -m bench.concurrent_replies
    uv run python -m bench.concurrent_replies --hidden 1024 --tokens 64

A small Llama with random weights (`--hidden`, 4 layers) is the base; each avatar has an adapter
of its own (r 16 on every projection, random weights). Every reply is exactly `--tokens` tokens
long (greedy, the end token held back), so the runs do the same work. For N replies at once, N
threads each ask the engine for one reply at the same moment. "One at a time" is the same engine
with a batch of one (what every reply did before the scheduler). Measured: aggregate tokens/s
(all tokens / wall time) and each reply's time to its first piece (from the moment all were
asked for).
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from bishop_text.chat_format import Turn
from bishop_text.generate import Engine, Version
from bishop_text.models import tiny_llama, train_tokenizer
from bishop_text.settings import TextSettings
from bishop_text.train import ARTIFACT_FILE, LORA_TARGETS

from tests.text.corpus import lecture


def make_base(folder: Path, hidden: int) -> Path:
    tokenizer = train_tokenizer([lecture(200, seed=s) for s in range(3)], vocab_size=2000)
    torch.manual_seed(0)
    tiny_llama(tokenizer, hidden=hidden, layers=4, heads=8).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_adapter(base: Path, folder: Path, seed: int) -> Version:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=LORA_TARGETS, init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    (folder / ARTIFACT_FILE).write_text(json.dumps({"kind": "lora"}))
    return Version(f"bench/{folder.name}", folder, "lora")


def turns(n: int) -> list[Turn]:
    return [
        Turn("system", f"Ты аватар номер {n}. Отвечай подробно."),
        Turn("user", f"Расскажи, пожалуйста, о своей работе и о том, что было вчера ({n})."),
    ]


def run(engine: Engine, versions: list[Version], n: int) -> dict[str, Any]:
    """`n` replies asked for at once, for `n` distinct avatars."""
    first: list[float] = [0.0] * n
    start_line = threading.Barrier(n + 1)
    began = 0.0

    def one(i: int) -> str:
        seen = False

        def on_piece(_: str) -> None:
            nonlocal seen
            if not seen:
                seen = True
                first[i] = time.perf_counter() - began

        start_line.wait()
        return engine.generate(versions[i % len(versions)], turns(i), on_piece)

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        began = time.perf_counter()
        start_line.wait()
        for future in futures:
            future.result()
        took = time.perf_counter() - began
    tokens = n * engine.settings.max_new_tokens
    ordered = sorted(first)
    return {
        "replies": n,
        "seconds": took,
        "tokens_per_s": tokens / took,
        "first_p50_ms": statistics.median(ordered) * 1000,
        "first_p95_ms": ordered[max(0, round(0.95 * n) - 1)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--sizes", default="1,8,32")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = make_base(root / "base", args.hidden)
        versions = [make_adapter(base, root / f"avatar-{i}", i) for i in range(max(sizes))]

        def engine(batch: int) -> Engine:
            settings = TextSettings(
                _env_file=None,
                profile="cpu",
                base_model=str(base),
                cache_dir=root / f"cache-{batch}",
                device="cpu",
                temperature=0.0,
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                max_batch_size=batch,
                adapter_cache_size=max(sizes),
            )
            e = Engine(settings)
            # Loaded and warmed up: every adapter attached once, so no run pays for loading.
            for i, version in enumerate(versions):
                e.generate(version, turns(i), lambda _: None)
            return e

        rows = []
        alone = engine(1)
        together = engine(max(sizes))
        for n in sizes:
            rows.append({"mode": "one at a time", **run(alone, versions, n)})
            rows.append({"mode": "together", **run(together, versions, n)})
    base_rate = {r["replies"]: r["tokens_per_s"] for r in rows if r["mode"] == "one at a time"}
    print(
        f"\nbase: Llama 4 layers, hidden {args.hidden}; {args.tokens} tokens a reply; "
        f"torch threads {torch.get_num_threads()}\n"
    )
    print(
        "| replies at once | mode | seconds | aggregate tokens/s | vs one at a time"
        " | first piece p50 / p95 ms |\n|---|---|---|---|---|---|"
    )
    for r in rows:
        ratio = r["tokens_per_s"] / base_rate[r["replies"]]
        print(
            f"| {r['replies']} | {r['mode']} | {r['seconds']:.2f} | {r['tokens_per_s']:.0f}"
            f" | {ratio:.2f}× | {r['first_p50_ms']:.0f} / {r['first_p95_ms']:.0f} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
