"""Training entry point, like trl's `scripts/sft.py`: `main(TrainArgs)` runs from the worker
(in a subprocess), from Kaggle and from the command line alike.

    python -m bishop_text.train --dataset data.jsonl --output-dir out \
        [--base-model ID] [--quantize-4bit]
"""

import argparse
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from bishop_text.chat_format import BOS, EOS, Turn
from bishop_text.dataset import Dataset

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ARTIFACT_FILE = "bishop.json"


@dataclass
class TrainArgs:
    dataset: str
    output_dir: str
    base_model: str = ""  # empty: train a tiny model from scratch (the demo profile)
    quantize_4bit: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
    gradient_checkpointing: bool = False
    optimizer: str = "adamw_torch"
    device: str = "auto"
    seed: int = 0
    demo_vocab_size: int = 2000
    demo_hidden: int = 128


Progress = Callable[[dict[str, float]], None]


class Stopped(Exception):
    """Training was asked to stop; nothing was saved."""


def main(
    args: TrainArgs,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Train and save the artifact in `args.output_dir`; returns its description."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    set_seed(args.seed)
    dataset = Dataset.from_jsonl(Path(args.dataset).read_bytes())
    tokenizer, model, kind = _model(args, dataset)
    train = [_encode(tokenizer, ex, args.max_length) for ex in dataset.train]
    validation = [_encode(tokenizer, ex, args.max_length) for ex in dataset.validation]
    steps_per_epoch = math.ceil(len(train) / (args.batch_size * args.grad_accum))
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(steps_per_epoch * args.epochs)
    started = time.monotonic()
    collator = Collator(tokenizer.pad_token_id, training=lambda: model.training)
    timer = StepTimer()
    state: dict[str, Any] = {"stopped": False, "tokens_per_second": 0.0}

    class Report(TrainerCallback):
        def on_log(self, _args, trainer_state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            step = trainer_state.global_step
            elapsed = time.monotonic() - started
            state["tokens_per_second"] = collator.train_tokens / max(timer.seconds, 1e-9)
            if progress and logs:
                progress(
                    {
                        "step": step,
                        "total_steps": total_steps,
                        "loss": logs.get("loss", math.nan),
                        "eval_loss": logs.get("eval_loss", math.nan),
                        "tokens_per_second": state["tokens_per_second"],
                        "eta_seconds": (total_steps - step) * elapsed / max(step, 1),
                    }
                )

        def on_step_end(self, _args, trainer_state, control, **kwargs):  # type: ignore[no-untyped-def]
            if should_stop():
                state["stopped"] = True
                control.should_training_stop = True
            return control

    use_cpu = args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())
    scratch = tempfile.mkdtemp(prefix="bishop-trainer-")
    training_args = TrainingArguments(
        output_dir=scratch,
        num_train_epochs=args.epochs,
        max_steps=total_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=min(10, total_steps // 10),
        logging_steps=1,
        eval_strategy="steps" if validation else "no",
        eval_steps=max(1, total_steps // 2),  # twice a run: validation loss costs little
        save_strategy="no",
        report_to="none",
        use_cpu=use_cpu,
        optim=args.optimizer,
        activation_checkpointing=args.gradient_checkpointing,
        train_sampling_strategy="group_by_length",  # similar lengths together: less padding
        seed=args.seed,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation or None,
        data_collator=collator,
        callbacks=[timer, Report()],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through `progress`, not stdout
    try:
        result = trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if state["stopped"]:
        raise Stopped
    metrics = {
        "train_loss": float(result.training_loss),
        "steps": float(trainer.state.global_step),
        "tokens_per_second": float(state["tokens_per_second"]),
        "train_seconds": time.monotonic() - started,
    }
    if validation:
        metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
    out = Path(args.output_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config = {k: v for k, v in asdict(args).items() if k not in ("dataset", "output_dir")}
    description = {
        "kind": kind,
        "base_model": args.base_model,
        "config": config,
        "metrics": metrics,
        "quantized_layers": sum(1 for m in model.modules() if type(m).__name__ == "Linear4bit"),
    }
    (out / ARTIFACT_FILE).write_text(json.dumps(description, indent=2))
    return description


def _model(args: TrainArgs, dataset: Dataset) -> tuple[Any, Any, str]:
    if not args.base_model:
        from bishop_text.models import tiny_llama, train_tokenizer

        texts = [t.content for ex in dataset.train + dataset.validation for t in ex]
        tokenizer = train_tokenizer(texts, args.demo_vocab_size)
        return tokenizer, tiny_llama(tokenizer, hidden=args.demo_hidden, seed=args.seed), "full"

    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(args.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    quantization = None
    if args.quantize_4bit:
        compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    model = AutoModelForCausalLM.from_pretrained(args.base_model, quantization_config=quantization)
    if args.quantize_4bit:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=args.gradient_checkpointing
        )
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    lora = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=[t for t in LORA_TARGETS if t in present],
        task_type="CAUSAL_LM",
    )
    return tokenizer, get_peft_model(model, lora), "lora"


def _encode(tokenizer: Any, turns: list[Turn], max_length: int) -> dict[str, list[int]]:
    """Token ids with labels on the bot's words only."""
    ids: list[int] = []
    labels: list[int] = []
    for turn in turns:
        head = tokenizer(f"{BOS}{turn.role}\n", add_special_tokens=False)["input_ids"]
        body = tokenizer(f"{turn.content}{EOS}", add_special_tokens=False)["input_ids"]
        ids += head + body
        labels += [-100] * len(head) + (body if turn.role == "bot" else [-100] * len(body))
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


class Collator:
    """Pads a batch; counts the real (non-padding) tokens it hands to training steps."""

    def __init__(self, pad_id: int, training: Callable[[], bool] = lambda: True) -> None:
        self.pad_id = pad_id
        self.training = training
        self.train_tokens = 0

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        if self.training():
            self.train_tokens += sum(len(ex["input_ids"]) for ex in batch)
        width = max(len(ex["input_ids"]) for ex in batch)
        ids = [ex["input_ids"] + [self.pad_id] * (width - len(ex["input_ids"])) for ex in batch]
        labels = [ex["labels"] + [-100] * (width - len(ex["labels"])) for ex in batch]
        mask = [[1] * len(ex["input_ids"]) + [0] * (width - len(ex["input_ids"])) for ex in batch]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


class StepTimer(TrainerCallback):
    """Time spent in training steps only (not evaluation, logging or setup)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self._began = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.seconds += time.perf_counter() - self._began


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(TrainArgs):
        flag = "--" + f.name.replace("_", "-")
        if f.type is bool:
            parser.add_argument(flag, action="store_true")
        else:
            kind = f.type if f.type in (int, float) else str
            required = f.name in ("dataset", "output_dir")
            parser.add_argument(
                flag, type=kind, default=None if required else f.default, required=required
            )
    args = TrainArgs(**vars(parser.parse_args()))
    print(json.dumps(main(args, progress=lambda p: print(json.dumps(p), flush=True)), indent=2))


if __name__ == "__main__":
    _cli()
