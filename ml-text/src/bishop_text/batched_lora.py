"""Many LoRA adapters on one base model in one batch: each row of a forward pass goes through its
own avatar's adapter (or none), with the same few kernels per layer however many adapters the
batch holds.

peft's mixed-adapter batches loop over the batch's adapters in every adapted layer and index the
rows with Python lists, one host-to-device copy each: on an H200, a 7B base with 32 adapters in
a batch took 1.4 s a step, launching kernels. Here each adapted layer keeps the adapters'
matrices stacked, one slot per adapter (slot 0: none, zeros); a forward pass gathers each row's
matrices with one index tensor, made once per pass, and applies them with two batched matrix
products: the gathered form of Punica's BGMV, which vLLM's LoRA serving uses. When the whole
batch has one adapter, its matrices are used as they are. Adapters are the files peft saves
(training still uses peft), each one's scaling folded into its B matrix.
"""

import json
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# peft's file of an adapter's weights, and the prefix of their keys (the model it wrapped).
WEIGHTS_FILE = "adapter_model.safetensors"
KEY_PREFIX = "base_model.model."


class AdapterSlots:
    """The LoRA adapters loaded on one base model, by name, most recently used last."""

    def __init__(self, model: Any, capacity: int) -> None:
        self.model = model
        self.capacity = max(1, capacity)  # adapters kept while no reply uses them
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._layers: dict[str, _Layer] = {}
        self.rows: Any = None  # the pass in progress: each row's slot, when they differ
        self.single = 0  # the pass in progress: the one slot of every row (0: no adapter)

    def __contains__(self, name: object) -> bool:
        return name in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    def touch(self, name: str) -> None:
        self._slots.move_to_end(name)

    def load(self, name: str, folder: Path, keep: set[str]) -> None:
        """Adapter `name` from peft's files in `folder`. When `capacity` adapters are loaded,
        it takes the slot of the least recently used one that is not in `keep`."""
        import torch
        from safetensors.torch import load_file

        config = json.loads((folder / "adapter_config.json").read_text())
        plain = config.get("peft_type", "LORA") == "LORA" and not config.get("use_dora")
        # Per-layer ranks or scalings would need a scaling per layer: our training sets none.
        if not plain or config.get("rank_pattern") or config.get("alpha_pattern"):
            raise ValueError(f"{folder.name}: only plain LoRA adapters can be served in batches")
        rank = int(config["r"])
        alpha = float(config["lora_alpha"])
        scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        pairs: dict[str, dict[str, Any]] = {}
        for key, tensor in load_file(folder / WEIGHTS_FILE).items():
            path, _, part = key.removeprefix(KEY_PREFIX).rpartition(".lora_")
            if part not in ("A.weight", "B.weight"):
                raise ValueError(f"{folder.name}: {key} is not a LoRA matrix of a linear layer")
            pairs.setdefault(path, {})[part[0]] = tensor
        if not pairs or any(len(pair) != 2 for pair in pairs.values()):
            raise ValueError(f"{folder.name}: an adapted layer lacks its A or its B matrix")
        for path, pair in pairs.items():
            try:
                module = self.model.get_submodule(path)
            except AttributeError:
                module = None
            a_shape = (rank, getattr(module, "in_features", -1))
            b_shape = (getattr(module, "out_features", -1), rank)
            if (tuple(pair["A"].shape), tuple(pair["B"].shape)) != (a_shape, b_shape):
                raise ValueError(f"{folder.name}: {path} does not fit this base model")
        slot = self._free_slot(keep)
        with torch.no_grad():
            for path, pair in pairs.items():
                self._layer(path).put(slot, pair["A"], pair["B"] * scaling)
            for path, layer in self._layers.items():
                if path not in pairs:
                    layer.clear(slot)  # the slot may have been another adapter's
        self._slots[name] = slot

    @contextmanager
    def selected(self, names: list[str | None]) -> Iterator[None]:
        """The forward passes inside go through the adapter named for each row (None: none)."""
        import torch

        slots = [self._slots[n] if n else 0 for n in names]
        if len(set(slots)) == 1:
            self.single = slots[0]
        else:
            self.rows = torch.tensor(slots, device=self.model.device)
        try:
            yield
        finally:
            self.rows, self.single = None, 0

    def _free_slot(self, keep: set[str]) -> int:
        while len(self._slots) >= self.capacity:
            unused = next((name for name in self._slots if name not in keep), None)
            if unused is None:
                break  # every one is in use: one more slot, until their replies end
            del self._slots[unused]  # the least recently used
        used = set(self._slots.values())
        return next(i for i in range(1, len(used) + 2) if i not in used)

    def _layer(self, path: str) -> "_Layer":
        if path not in self._layers:
            layer = _Layer(self, self.model.get_submodule(path))
            layer.clear(max(self._slots.values(), default=0))  # as many slots as the others
            layer.attach()
            self._layers[path] = layer
        return self._layers[path]


class _Layer:
    """One adapted linear layer: its adapters' A [slot, rank, in] and scaled B [slot, out, rank],
    added to the layer's output by a forward hook."""

    def __init__(self, slots: AdapterSlots, module: Any) -> None:
        import torch

        self.slots = slots
        self.module = module
        weight = module.weight
        self.a = torch.zeros(1, 0, module.in_features, dtype=weight.dtype, device=weight.device)
        self.b = torch.zeros(1, module.out_features, 0, dtype=weight.dtype, device=weight.device)

    def attach(self) -> None:
        """From now on the layer's output gets its adapters' part (once its slots are made)."""
        self.module.register_forward_hook(self._add)

    def put(self, slot: int, a: Any, b: Any) -> None:
        self.clear(slot, a.shape[0])
        self.a[slot, : a.shape[0]] = a.to(self.a.dtype)
        self.b[slot, :, : b.shape[1]] = b.to(self.b.dtype)

    def clear(self, slot: int, rank: int = 0) -> None:
        """Zeros in `slot` (every layer has every slot: a batch's index reaches them all)."""
        self._grow(slot + 1, rank)
        self.a[slot].zero_()
        self.b[slot].zero_()

    def _grow(self, slots: int, rank: int) -> None:
        """Room for `slots` slots of `rank` (a smaller adapter's matrices are zero-padded, which
        changes nothing it computes)."""
        have_slots, have_rank = self.a.shape[0], self.a.shape[1]
        if slots <= have_slots and rank <= have_rank:
            return
        if slots > have_slots:  # doubled up to the cache's bound: few copies as adapters come
            slots = max(slots, min(2 * have_slots, self.slots.capacity + 1))
        slots, rank = max(slots, have_slots), max(rank, have_rank)
        a = self.a.new_zeros(slots, rank, self.a.shape[2])
        b = self.b.new_zeros(slots, self.b.shape[1], rank)
        a[:have_slots, :have_rank] = self.a
        b[:have_slots, :, :have_rank] = self.b
        self.a, self.b = a, b

    def _add(self, module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        import torch

        slots = self.slots
        if slots.rows is not None:  # rows of different adapters: each gathers its own
            x = inputs[0].to(self.a.dtype)
            flat = x.reshape(x.shape[0], -1, x.shape[-1])
            a = self.a.index_select(0, slots.rows)
            b = self.b.index_select(0, slots.rows)
            delta = torch.bmm(torch.bmm(flat, a.transpose(1, 2)), b.transpose(1, 2))
            return output + delta.reshape(output.shape).to(output.dtype)
        if slots.single:
            x = inputs[0].to(self.a.dtype)
            delta = (x @ self.a[slots.single].T) @ self.b[slots.single].T
            return output + delta.to(output.dtype)
        return None  # no adapter: the output as it is
