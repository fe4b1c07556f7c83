"""ml-text: training throughput against a plain Trainer + peft run, reply speed, and the memory
of cached adapters.

    uv run python -m bench.text_pipeline

Training: the same small Llama (random weights), the same data (passages of uneven length), the
same LoRA, batch size and steps; throughput counts the tokens that carry loss, per second.
Baseline: transformers' `Trainer` with peft and `DataCollatorForLanguageModeling`, defaults.
"""

import asyncio
import os
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bishop_text.chat_format import Turn
from bishop_text.dataset import Dataset, build
from bishop_text.generate import Engine
from bishop_text.ingest import Transcript
from bishop_text.ingest.clean import chunks
from bishop_text.jobs import _tar
from bishop_text.models import tiny_llama, train_tokenizer
from bishop_text.settings import TextSettings
from bishop_text.train import ARTIFACT_FILE, LORA_TARGETS, StepTimer, TrainArgs, _encode, main
from transformers import set_seed

from tests.text.corpus import lecture

STEPS, BATCH, LR = 30, 8, 5e-3


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_base(folder: Path, hidden: int) -> Path:
    texts = [lecture(200, seed=s) for s in range(3)]
    tokenizer = train_tokenizer(texts, vocab_size=2000)
    tiny_llama(tokenizer, hidden=hidden, layers=4, heads=8).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_adapters(base: Path, root: Path, count: int) -> list[Path]:
    """LoRA adapters with random weights (what training leaves, size for size)."""
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = []
    for i in range(count):
        set_seed(i)
        config = LoraConfig(
            r=16,
            lora_alpha=32,
            task_type="CAUSAL_LM",
            target_modules=LORA_TARGETS,
            init_lora_weights=False,
        )
        folder = root / f"adapter-{i}"
        get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(folder)
        (folder / ARTIFACT_FILE).write_text(json.dumps({"kind": "lora"}))
        folders.append(folder)
    return folders


def make_dataset(path: Path) -> Dataset:
    # Passages of very different lengths, as real materials give.
    passages = []
    for seed in range(40):
        passages += chunks(lecture(2 + seed % 12, seed=seed), 60 + 40 * (seed % 10))
    data = build([Transcript(text="", passages=passages)])
    path.write_bytes(data.to_jsonl())
    return data


def ours(base: Path, dataset: Path, out: Path) -> float:
    result = main(
        TrainArgs(
            dataset=str(dataset),
            output_dir=str(out),
            base_model=str(base),
            max_steps=STEPS,
            batch_size=BATCH,
            learning_rate=LR,
            device="cpu",
        )
    )
    return result["metrics"]["tokens_per_second"]


def plain(base: Path, data: Dataset) -> float:
    """The baseline: transformers' Trainer + peft with its defaults, timed the same way."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    from transformers import DataCollatorForLanguageModeling as LmCollator

    tokenizer = AutoTokenizer.from_pretrained(base)
    set_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            task_type="CAUSAL_LM",
            target_modules=LORA_TARGETS,
        ),
    )
    rows = [{"input_ids": _encode(tokenizer, ex, 512)["input_ids"]} for ex in data.train]
    lm = LmCollator(tokenizer, mlm=False)
    counted = {"tokens": 0}

    def collate(batch):  # type: ignore[no-untyped-def]
        counted["tokens"] += sum(len(r["input_ids"]) for r in batch)
        return lm(batch)

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=STEPS,
            per_device_train_batch_size=BATCH,
            learning_rate=LR,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
            logging_steps=STEPS,
            seed=0,
        )
        Trainer(
            model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[timer]
        ).train()
    return counted["tokens"] / timer.seconds


async def replies(base: Path, adapters: list[Path], root: Path) -> dict[str, float]:
    settings = TextSettings(
        _env_file=None,
        profile="cpu",
        base_model=str(base),
        device="cpu",
        cache_dir=root / "cache",
        max_new_tokens=64,
        min_new_tokens=64,
        temperature=0.0,
        adapter_cache_size=50,
    )
    engine = Engine(settings)
    versions = []
    for i, folder in enumerate(adapters):
        url = f"users/u/avatars/{uuid.uuid4()}/adapters/{i}.tar"
        engine.unpack(_tar(folder), engine.version_folder(url))
        versions.append(engine.version(url))
    turns = [Turn("system", "Ты Анна, учитель физики."), Turn("user", "Что такое импульс?")]
    engine.generate(versions[0], turns, lambda _: None)  # load the base and warm up
    one = rss_mib()
    first_piece: list[float] = []
    pieces: list[str] = []
    start = time.perf_counter()
    text = engine.generate(
        versions[0],
        turns,
        lambda p: (first_piece.append(time.perf_counter() - start), pieces.append(p)),
    )
    elapsed = time.perf_counter() - start
    tokenizer = engine._base[0]  # type: ignore[index]
    new_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    for version in versions[1:]:
        engine.generate(version, turns, lambda _: None)
    twenty = rss_mib()
    base_mib = await asyncio.to_thread(
        lambda: sum(p.stat().st_size for p in base.glob("*.safetensors")) / 2**20
    )
    adapter_mib = (adapters[0] / "adapter_model.safetensors").stat().st_size / 2**20
    return {
        "first_delta_ms": first_piece[0] * 1000,
        "tokens_per_second": new_tokens / elapsed,
        "rss_1": one,
        "rss_20": twenty,
        "base_mib": base_mib,
        "adapter_mib": adapter_mib,
    }


def main_bench() -> None:
    import torch

    torch.set_num_threads(1)  # steadier timings on a shared 2-core machine
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = make_base(root / "base", hidden=256)
        data = make_dataset(root / "data.jsonl")
        print(
            f"base: {sum(p.stat().st_size for p in base.glob('*.safetensors')) / 2**20:.1f} MiB; "
            f"{len(data.train)} training examples"
        )
        # Alternate the two, three times each: this machine's speed drifts.
        baselines, mines = [], []
        for i in range(3):
            baselines.append(plain(base, data))
            mines.append(ours(base, root / "data.jsonl", root / f"adapter-{i}"))
        baseline, mine = statistics.median(baselines), statistics.median(mines)
        print(
            f"training tokens/s: Bishop {mine:.0f}, plain Trainer+peft {baseline:.0f}, "
            f"ratio {mine / baseline:.2f}"
        )
        # Memory: a bigger base, so that one copy of it would show; 20 adapters of its size.
        big = make_base(root / "big", hidden=1024)
        adapters = make_adapters(big, root / "big-adapters", 20)
        r = asyncio.run(replies(big, adapters, root))
        print(
            f"reply: first delta {r['first_delta_ms']:.0f} ms, "
            f"{r['tokens_per_second']:.1f} tokens/s"
        )
        print(
            f"RSS with 1 adapter {r['rss_1']:.0f} MiB, with 20 adapters {r['rss_20']:.0f} MiB "
            f"(+{r['rss_20'] - r['rss_1']:.0f} MiB; the base is {r['base_mib']:.0f} MiB on disk, "
            f"one adapter {r['adapter_mib']:.1f} MiB)"
        )
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main_bench()
