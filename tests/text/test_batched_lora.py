"""Batched LoRA: rows of one forward pass, each through its own adapter (or none), give what
peft gives for each adapter alone; adapters of other ranks, layers and scalings share a batch;
the least recently used unused adapter makes room; adapters that cannot be served are refused."""

from pathlib import Path
from typing import Any

import pytest
import torch
from bishop_text.batched_lora import AdapterSlots
from bishop_text.models import tiny_llama


def _adapter(base: Path, folder: Path, seed: int, **config: Any) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    get_peft_model(model, LoraConfig(init_lora_weights=False, **config)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batched-lora")
    every = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return {
        "anna": _adapter(tiny_base, root / "anna", 1, r=8, lora_alpha=32, target_modules=every),
        "boris": _adapter(
            tiny_base, root / "boris", 2, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]
        ),
        "vera": _adapter(
            tiny_base, root / "vera", 3, r=16, lora_alpha=16, target_modules=every, use_rslora=True
        ),
    }


def _base(tiny_base: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_base).eval()


def _peft_logits(tiny_base: Path, adapter: Path | None, ids: torch.Tensor) -> torch.Tensor:
    from peft import PeftModel

    model = _base(tiny_base)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_each_row_of_a_batch_equals_peft_with_its_own_adapter(
    tiny_base: Path, adapters: dict[str, Path]
) -> None:
    model = _base(tiny_base)
    slots = AdapterSlots(model, capacity=4)
    for name, folder in adapters.items():
        slots.load(name, folder, keep=set())
    names = ["anna", None, "boris", "vera", "anna"]
    torch.manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (len(names), 7))
    with torch.no_grad(), slots.selected(names):
        batched = model(input_ids=ids).logits
    for row, name in enumerate(names):
        alone = _peft_logits(tiny_base, adapters[name] if name else None, ids[row : row + 1])
        torch.testing.assert_close(batched[row : row + 1], alone, rtol=1e-4, atol=1e-4)
    # A batch of one adapter takes the short way, with the same result; outside `selected`,
    # the base model is itself again.
    with torch.no_grad(), slots.selected(["vera", "vera"]):
        single = model(input_ids=ids[:2]).logits
    torch.testing.assert_close(single, _peft_logits(tiny_base, adapters["vera"], ids[:2]))
    with torch.no_grad():
        plain = model(input_ids=ids[:1]).logits
    torch.testing.assert_close(plain, _peft_logits(tiny_base, None, ids[:1]))


def test_the_least_recently_used_adapter_that_no_reply_uses_makes_room(
    tiny_base: Path, adapters: dict[str, Path]
) -> None:
    model = _base(tiny_base)
    slots = AdapterSlots(model, capacity=2)
    slots.load("anna", adapters["anna"], keep=set())
    slots.load("boris", adapters["boris"], keep=set())
    slots.touch("anna")
    slots.load("vera", adapters["vera"], keep=set())
    assert ("anna" in slots, "boris" in slots, "vera" in slots) == (True, False, True)
    # Every loaded adapter in use by a reply: one more, over the bound, until they are not.
    slots.load("boris", adapters["boris"], keep={"anna", "vera"})
    assert len(slots) == 3
    slots.load("extra", adapters["boris"], keep={"boris"})
    assert len(slots) == 2 and "boris" in slots and "extra" in slots
    # The reused slot carries only its new adapter: "extra" (q and v only) in anna's old slot.
    torch.manual_seed(1)
    ids = torch.randint(5, model.config.vocab_size, (2, 5))
    with torch.no_grad(), slots.selected(["extra", None]):
        batched = model(input_ids=ids).logits
    torch.testing.assert_close(
        batched[:1], _peft_logits(tiny_base, adapters["boris"], ids[:1]), rtol=1e-4, atol=1e-4
    )


def test_adapters_that_cannot_be_served_in_batches_are_refused(
    tiny_base: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    slots = AdapterSlots(_base(tiny_base), capacity=2)
    dora = _adapter(tiny_base, tmp_path / "dora", 1, r=4, target_modules=["q_proj"], use_dora=True)
    with pytest.raises(ValueError, match="only plain LoRA"):
        slots.load("dora", dora, keep=set())
    patterned = _adapter(
        tiny_base,
        tmp_path / "patterned",
        1,
        r=4,
        target_modules=["q_proj"],
        alpha_pattern={"q_proj": 16},
    )
    with pytest.raises(ValueError, match="only plain LoRA"):
        slots.load("patterned", patterned, keep=set())
    other = tmp_path / "other-base"  # the same layers, narrower
    tiny_llama(AutoTokenizer.from_pretrained(tiny_base), hidden=32).save_pretrained(other)
    foreign = _adapter(other, tmp_path / "foreign", 1, r=4, target_modules=["q_proj"])
    with pytest.raises(ValueError, match="does not fit this base model"):
        slots.load("foreign", foreign, keep=set())
    assert len(slots) == 0
