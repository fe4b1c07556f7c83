"""Training on CPU: LoRA and 4-bit QLoRA on a small base, and a demo model from scratch."""

from pathlib import Path

import pytest
from bishop_text.train import ARTIFACT_FILE, Stopped, TrainArgs, main


def _train(base: str, dataset: Path, out: Path, **extra) -> tuple[dict, list[dict]]:  # type: ignore[no-untyped-def]
    logs: list[dict] = []
    args = TrainArgs(
        dataset=str(dataset),
        output_dir=str(out),
        base_model=base,
        max_steps=40,
        batch_size=8,
        learning_rate=5e-3,
        device="cpu",
        **extra,
    )
    return main(args, progress=logs.append), logs


def _first_and_last_loss(logs: list[dict]) -> tuple[float, float]:
    losses = [log["loss"] for log in logs if log["loss"] == log["loss"]]  # NaN on eval-only logs
    return sum(losses[:3]) / 3, sum(losses[-3:]) / 3


@pytest.mark.parametrize("quantize_4bit", [False, True], ids=["lora", "qlora-4bit"])
def test_lora_loss_decreases_and_adapter_is_saved(
    tiny_base: Path, dataset_file: Path, tmp_path: Path, quantize_4bit: bool
) -> None:
    result, logs = _train(
        str(tiny_base), dataset_file, tmp_path / "adapter", quantize_4bit=quantize_4bit
    )
    first, last = _first_and_last_loss(logs)
    assert last < first * 0.9, (first, last)
    assert result["kind"] == "lora"
    assert (result["quantized_layers"] > 0) == quantize_4bit  # NF4 layers really in use
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / ARTIFACT_FILE).exists()
    assert result["metrics"]["eval_loss"] > 0
    assert logs[-1]["step"] == logs[-1]["total_steps"] == 40
    assert logs[-1]["tokens_per_second"] > 0


def test_demo_model_trained_from_scratch(dataset_file: Path, tmp_path: Path) -> None:
    result, logs = _train("", dataset_file, tmp_path / "demo", demo_vocab_size=300)
    first, last = _first_and_last_loss(logs)
    assert last < first * 0.9
    assert result["kind"] == "full"
    assert (tmp_path / "demo" / "model.safetensors").exists()
    assert (tmp_path / "demo" / "tokenizer.json").exists()


def test_stop_ends_training_and_saves_nothing(
    tiny_base: Path, dataset_file: Path, tmp_path: Path
) -> None:
    steps: list[int] = []
    args = TrainArgs(
        dataset=str(dataset_file),
        output_dir=str(tmp_path / "out"),
        base_model=str(tiny_base),
        max_steps=200,
        batch_size=8,
        device="cpu",
    )
    with pytest.raises(Stopped):
        main(
            args,
            progress=lambda log: steps.append(int(log["step"])),
            should_stop=lambda: len(steps) >= 3,
        )
    assert max(steps) < 10
    assert not (tmp_path / "out" / ARTIFACT_FILE).exists()
