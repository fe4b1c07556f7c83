"""Replies: persona + retrieved passages + history, generated with the avatar's active version
and streamed piece by piece.

One base model is loaded once and LoRA adapters are loaded onto it by name (an LRU of them,
`batched_lora.py`), so each cached adapter costs its own few megabytes, not another base
model. Demo versions are whole tiny models, cached the same way. Replies in flight are
generated together by the generation scheduler (`scheduler.py`), which owns the models while
it runs.
"""

import hashlib
import io
import json
import logging
import shutil
import tarfile
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bishop_contracts.events import InferenceResponse
from bishop_contracts.text import clean_generated

from bishop_text.batched_lora import AdapterSlots
from bishop_text.chat_format import Turn, fit, prompt
from bishop_text.models import demo_base
from bishop_text.retrieval import Passage
from bishop_text.scheduler import GenerationScheduler, Runner, Sampling
from bishop_text.settings import TextSettings
from bishop_text.train import ARTIFACT_FILE

log = logging.getLogger("bishop.text")


@dataclass(frozen=True)
class Version:
    """What to generate with: a local artifact folder, or none for the base model."""

    key: str | None
    folder: Path | None
    kind: str  # "lora", "full" or "base"


class Engine:
    def __init__(self, settings: TextSettings) -> None:
        self.settings = settings
        self._base: tuple[Any, Any, AdapterSlots] | None = None
        self._full: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self.scheduler = GenerationScheduler(
            self._runner,
            Sampling(
                max_new_tokens=settings.max_new_tokens,
                min_new_tokens=min(settings.min_new_tokens, settings.max_new_tokens),
                temperature=settings.temperature,
            ),
            settings.max_batch_size,
        )

    def version_folder(self, adapter_url: str) -> Path:
        digest = hashlib.sha256(adapter_url.encode()).hexdigest()[:24]
        return self.settings.resolved_cache_dir / "versions" / digest

    @staticmethod
    def unpack(archive: bytes, folder: Path) -> None:
        # Unpacked beside and renamed into place: a worker killed mid-way leaves no half
        # version behind that `folder.exists()` would take for a whole one.
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = folder.with_name(f"{folder.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(partial, filter="data")
            partial.rename(folder)
        except OSError:
            if not folder.exists():
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def version(self, adapter_url: str | None) -> Version:
        if adapter_url is None:
            return Version(None, None, "base")
        folder = self.version_folder(adapter_url)
        kind = json.loads((folder / ARTIFACT_FILE).read_text())["kind"]
        return Version(adapter_url, folder, kind)

    def generate(
        self,
        version: Version,
        turns: list[Turn],
        on_piece: Callable[[str], None],
        reply_id: uuid.UUID | None = None,
    ) -> str:
        """Blocking: generate the bot's answer to `turns`; every new piece goes to `on_piece`.
        Raises ReplyCancelled if `cancel(reply_id)` stopped it."""
        return self.scheduler.generate((version, turns), on_piece, reply_id)

    def cancel(self, reply_id: uuid.UUID) -> bool:
        """Stop generating that reply (at the next step); False if it is not generated here."""
        return self.scheduler.cancel(reply_id)

    def _runner(
        self, payload: tuple[Version, list[Turn]], in_use: set[str]
    ) -> tuple[Runner, list[int]]:
        """Called by the scheduler, on its thread: what generates this reply, and its prompt."""
        version, turns = payload
        runner = self._select(version, in_use)
        budget = self.settings.context_tokens - self.settings.max_new_tokens
        return runner, _fit(runner.tokenizer, turns, budget)[0].tolist()

    def _select(self, version: Version, in_use: set[str]) -> Runner:
        if version.kind == "full" or (version.kind == "base" and self.settings.profile == "demo"):
            folder = version.folder or demo_base(self.settings.resolved_cache_dir / "demo-base")
            return Runner(*self._full_model(str(folder), folder), adapter=None)
        tokenizer, model, adapters = self._base_model()
        if version.kind == "base":
            return Runner(tokenizer, model, None, adapters)
        name = hashlib.sha256(str(version.key).encode()).hexdigest()[:16]
        if name not in adapters:
            assert version.folder is not None
            adapters.load(name, version.folder, keep=in_use)
        adapters.touch(name)
        return Runner(tokenizer, model, name, adapters)

    def _base_model(self) -> tuple[Any, Any, AdapterSlots]:
        if self._base is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            name = self.settings.resolved_base_model
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name).to(self._device())
            model.eval()
            self._base = (tokenizer, model, AdapterSlots(model, self.settings.adapter_cache_size))
            log.info("base model %s loaded", name)
        return self._base

    def _full_model(self, key: str, folder: Path) -> tuple[Any, Any]:
        if key not in self._full:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            model = AutoModelForCausalLM.from_pretrained(folder).to(self._device())
            model.eval()
            self._full[key] = (AutoTokenizer.from_pretrained(folder), model)
            while len(self._full) > self.settings.adapter_cache_size:
                self._full.popitem(last=False)
        self._full.move_to_end(key)
        return self._full[key]

    def _device(self) -> str:
        import torch

        if self.settings.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.settings.device


class Detokenizer:
    """Generated token ids to clean text pieces that never cut a character in two.

    A byte-level tokenizer spells many characters with several tokens; decoded alone, the first
    ones are U+FFFD. So the text is decoded from a few tokens back (as TGI and vLLM do) and held
    while it ends in U+FFFD, until the next token completes the character; a trailing "\r" waits
    too, in case "\n" follows. What never completes is dropped at the end.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.start = 0  # decoding starts here, so that a token's leading space decodes right
        self.sent = 0  # the ids before this are sent

    def push(self, ids: list[int]) -> str:
        """The text the new `ids` complete (often empty)."""
        self.ids += ids
        sent, text = self._decode()
        if len(text) <= len(sent) or text.endswith(("\ufffd", "\r")):
            return ""
        self.start, self.sent = self.sent, len(self.ids)
        return clean_generated(text[len(sent) :])

    def finish(self) -> str:
        """What is still held back, without the characters that never completed."""
        sent, text = self._decode()
        self.start = self.sent = len(self.ids)
        return clean_generated(text[len(sent) :])

    def _decode(self) -> tuple[str, str]:
        def decode(ids: list[int]) -> str:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

        return decode(self.ids[self.start : self.sent]), decode(self.ids[self.start :])


def _fit(tokenizer: Any, turns: list[Turn], budget: int) -> Any:
    """Prompt ids within `budget` tokens (see `fit`); what still does not fit loses its start."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    text = prompt(fit(turns, budget, count))
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    return ids[:, -budget:]


def conversation(event: InferenceResponse, passages: list[Passage]) -> list[Turn]:
    """System turn (persona and passages), the chat's history, and the new message."""
    persona = event.persona
    russian = (persona.language if persona else "ru") == "ru"
    lines = []
    if persona:
        labels = (
            ("Ты", "Характер", "Ситуация", "Указания")
            if russian
            else ("You are", "Personality", "Scenario", "Instructions")
        )
        lines.append(f"{labels[0]} {persona.name}. {persona.description}".strip())
        for label, value in zip(
            labels[1:], (persona.personality, persona.scenario, persona.instructions), strict=True
        ):
            if value:
                lines.append(f"{label}: {value}")
    if passages:
        lines.append("Из твоих материалов:" if russian else "From your materials:")
        # One line each: the prompt budget drops the last (least relevant) passages whole.
        lines += ["- " + " ".join(p.text.split()) for p in passages]
    history = [Turn("user" if t.role == "user" else "bot", t.text) for t in event.history]
    return [Turn("system", "\n".join(lines)), *history, Turn("user", event.text)]
