"""Many conversations at once: replies for distinct avatars, each with its own LoRA adapter on
one base, generated one at a time and together (the generation scheduler's batches).

    uv run python -m bench.concurrent_replies
    uv run python -m bench.concurrent_replies --hidden 1024 --tokens 64
    python -m bench.concurrent_replies --shape mistral-7b --device cuda   # on a GPU

The base has random weights: a small Llama (`--shape tiny`: 4 layers, hidden 256) or Mistral
7B's shape in bf16 (`--shape mistral-7b`: 32 layers, hidden 4096, 8 key/value heads; the
vocabulary is the bench tokenizer's, not Mistral's 32,000). `--hidden` and `--layers` override
the shape's. Each avatar has an adapter of its own (r 16 on every projection, random weights).
Every reply is exactly `--tokens` tokens long (greedy, the end token held back), so the runs do
the same work. For N replies at once, N threads each ask the engine for one reply at the same
moment. "One at a time" is the same engine with a batch of one (what every reply did before the
scheduler). Measured: aggregate tokens/s (all tokens / wall time) and each reply's time to its
first piece (from the moment all were asked for). On a GPU the rows add one reply made by
transformers' own `generate` with one adapter (no scheduler), for reference.
"""

import argparse
import gc
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from bishop_text.chat_format import Turn, prompt
from bishop_text.generate import Engine, Version
from bishop_text.models import tiny_llama, train_tokenizer
from bishop_text.settings import TextSettings
from bishop_text.train import ARTIFACT_FILE, LORA_TARGETS
from transformers import AutoTokenizer

from tests.text.corpus import lecture

SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"arch": "llama", "hidden": 256, "layers": 4},
    "mistral-7b": {"arch": "mistral", "hidden": 4096, "layers": 32, "dtype": "bfloat16"},
}


def make_base(folder: Path, shape: dict[str, Any], device: str) -> Any:
    """The base model, saved in `folder` (where the engines load it from) and returned."""
    tokenizer = train_tokenizer([lecture(200, seed=s) for s in range(3)], vocab_size=2000)
    torch.manual_seed(0)
    if shape["arch"] == "llama":
        model = tiny_llama(tokenizer, hidden=shape["hidden"], layers=shape["layers"], heads=8)
        model.to(device)
    else:
        from transformers import AutoModelForCausalLM, MistralConfig

        hidden = shape["hidden"]
        config = MistralConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=hidden * 7 // 2,
            num_hidden_layers=shape["layers"],
            num_attention_heads=32,
            num_key_value_heads=8,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.device(device):  # 7B initialised on the GPU: seconds, not minutes
            model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, shape["dtype"]))
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def make_adapters(base: Any, root: Path, count: int) -> list[Version]:
    """`count` adapters with random weights of their own, made on the one base in memory."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=16, lora_alpha=32, target_modules=LORA_TARGETS, init_lora_weights=False)
    model = get_peft_model(base, config)
    lora = [m for n, m in model.named_modules() if ".lora_A." in n or ".lora_B." in n]
    versions = []
    for seed in range(count):
        torch.manual_seed(seed)
        for module in lora:
            module.reset_parameters()
        folder = root / f"avatar-{seed}"
        model.save_pretrained(folder)
        (folder / ARTIFACT_FILE).write_text(json.dumps({"kind": "lora"}))
        versions.append(Version(f"bench/{folder.name}", folder, "lora"))
    return versions


def reference(model: Any, tokenizer: Any, new_tokens: int) -> dict[str, Any]:
    """One reply by transformers' `generate` through one adapter, greedy."""
    ids = tokenizer(prompt(turns(0)), return_tensors="pt", add_special_tokens=False)
    ids = ids["input_ids"].to(model.device)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)  # warm-up
        began = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        took = time.perf_counter() - began
    return {"replies": 1, "seconds": took, "tokens_per_s": new_tokens / took}


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
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--hidden", type=int, help="the shape's hidden size, overridden")
    parser.add_argument("--layers", type=int, help="the shape's layers, overridden")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--sizes", default="1,8,32")
    parser.add_argument("--alone-sizes", help="the sizes also run one at a time (all of --sizes)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    alone_sizes = [int(s) for s in (args.alone_sizes or args.sizes).split(",")]
    shape = dict(SHAPES[args.shape])
    shape.update({k: v for k in ("hidden", "layers") if (v := getattr(args, k))})
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        model = make_base(root / "base", shape, args.device)
        versions = make_adapters(model, root, max(sizes))
        print(f"base and adapters made in {time.perf_counter() - began:.0f} s", flush=True)
        if args.device == "cuda":
            tokenizer = AutoTokenizer.from_pretrained(root / "base")
            add({"mode": "transformers generate", **reference(model, tokenizer, args.tokens)})
        del model
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()

        def engine(batch: int, adapters: int) -> Engine:
            settings = TextSettings(
                _env_file=None,
                profile="cpu",
                base_model=str(root / "base"),
                cache_dir=root / f"cache-{batch}",
                device=args.device,
                temperature=0.0,
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                max_batch_size=batch,
                adapter_cache_size=max(sizes),
            )
            e = Engine(settings)
            # Loaded and warmed up: every adapter attached once, so no run pays for loading.
            began = time.perf_counter()
            run(e, versions, adapters)
            print(f"engine {batch}: loaded and warm in {time.perf_counter() - began:.0f} s")
            return e

        def measured(e: Engine, n: int) -> dict[str, Any]:
            # Each size once unmeasured first: on a GPU the first passes of new batch shapes
            # ran up to 2.6 times slower than later ones (kernels chosen, memory allocated).
            run(e, versions, n)
            return run(e, versions, n)

        # Together first: on a machine lent for minutes, the scheduler's rows matter most.
        together = engine(max(sizes), max(sizes))
        for n in sizes:
            add({"mode": "together", **measured(together, n)})
        if args.device == "cuda":
            # The together engine's base, its adapters and the caches of its largest batch.
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(f"GPU memory at most {peak:.1f} GiB allocated so far", flush=True)
        alone = engine(1, max(alone_sizes))
        for n in alone_sizes:
            add({"mode": "one at a time", **measured(alone, n)})
    base_rate = {r["replies"]: r["tokens_per_s"] for r in rows if r["mode"] == "one at a time"}
    print(
        f"\nbase: {args.shape} ({shape['arch']}, {shape['layers']} layers, hidden "
        f"{shape['hidden']}) on {args.device}; {args.tokens} tokens a reply; "
        f"torch threads {torch.get_num_threads()}\n"
    )
    print(
        "| replies at once | mode | seconds | aggregate tokens/s | vs one at a time"
        " | first piece p50 / p95 ms |\n|---|---|---|---|---|---|"
    )
    for r in sorted(rows, key=lambda r: (r["replies"], r["mode"])):
        # One at a time, the aggregate rate hardly depends on how many wait: a size run only
        # together is compared with the largest one run alone.
        alone_rate = base_rate.get(r["replies"]) or base_rate[max(base_rate)]
        first = f"{r['first_p50_ms']:.0f} / {r['first_p95_ms']:.0f}" if "first_p50_ms" in r else "–"
        print(
            f"| {r['replies']} | {r['mode']} | {r['seconds']:.2f} | {r['tokens_per_s']:.0f}"
            f" | {r['tokens_per_s'] / alone_rate:.2f}× | {first} |"
        )


if __name__ == "__main__":
    main()
