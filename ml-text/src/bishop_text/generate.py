"""Replies: persona + retrieved passages + history, generated with the avatar's active version
and streamed piece by piece.

One base model is loaded once and LoRA adapters are attached to it by name (an LRU of them),
so each cached adapter costs its own few megabytes, not another base model. Demo versions are
whole tiny models, cached the same way.
"""

import hashlib
import io
import json
import logging
import queue
import shutil
import tarfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bishop_contracts.events import InferenceResponse
from bishop_contracts.text import clean_generated

from bishop_text.chat_format import Turn, prompt
from bishop_text.models import demo_base
from bishop_text.retrieval import Passage
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
        self._lock = threading.Lock()
        self._base: tuple[Any, Any] | None = None
        self._adapters: OrderedDict[str, None] = OrderedDict()
        self._full: OrderedDict[str, tuple[Any, Any]] = OrderedDict()

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

    def generate(self, version: Version, turns: list[Turn], on_piece: Callable[[str], None]) -> str:
        """Blocking: generate the bot's answer to `turns`; every new piece goes to `on_piece`."""
        with self._lock:
            tokenizer, model = self._select(version)
            return self._stream(tokenizer, model, turns, on_piece)

    def _select(self, version: Version) -> tuple[Any, Any]:
        if version.kind == "full" or (version.kind == "base" and self.settings.profile == "demo"):
            folder = version.folder or demo_base(self.settings.resolved_cache_dir / "demo-base")
            return self._full_model(str(folder), folder)
        tokenizer, model = self._base_model()
        if version.kind == "base":
            return tokenizer, _WithoutAdapters(model)
        name = hashlib.sha256(str(version.key).encode()).hexdigest()[:16]
        if name not in self._adapters:
            model = self._attach(model, name, version.folder)
        self._adapters.move_to_end(name)
        model.set_adapter(name)
        return tokenizer, model

    def _attach(self, model: Any, name: str, folder: Path | None) -> Any:
        from peft import PeftModel

        if hasattr(model, "load_adapter") and hasattr(model, "peft_config"):
            model.load_adapter(str(folder), adapter_name=name)
        else:
            model = PeftModel.from_pretrained(model, str(folder), adapter_name=name)
            self._base = (self._base[0], model)  # type: ignore[index]
        model.eval()
        self._adapters[name] = None
        while len(self._adapters) > self.settings.adapter_cache_size:
            evicted, _ = self._adapters.popitem(last=False)
            model.delete_adapter(evicted)
        return model

    def _base_model(self) -> tuple[Any, Any]:
        if self._base is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            name = self.settings.resolved_base_model
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name).to(self._device())
            model.eval()
            self._base = (tokenizer, model)
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

    def _stream(
        self, tokenizer: Any, model: Any, turns: list[Turn], on_piece: Callable[[str], None]
    ) -> str:
        budget = self.settings.context_tokens - self.settings.max_new_tokens
        ids = _fit(tokenizer, turns, budget)
        streamer = _Pieces(tokenizer)
        sampling = self.settings.temperature > 0
        kwargs = {
            "input_ids": ids.to(model.device),
            "attention_mask": ids.new_ones(ids.shape).to(model.device),
            "max_new_tokens": self.settings.max_new_tokens,
            "min_new_tokens": min(self.settings.min_new_tokens, self.settings.max_new_tokens),
            "streamer": streamer,
            "do_sample": sampling,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        if sampling:
            kwargs.update(temperature=self.settings.temperature, top_p=0.9)
        kwargs["logits_processor"] = _logits_processors(
            ReadableBeforeEnd(tokenizer, ids.shape[1], kwargs["eos_token_id"])
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                model.generate(**kwargs)
            except BaseException as exc:  # reported below, on the caller's thread
                failure.append(exc)
                streamer.stop()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        pieces = []
        for piece in streamer:
            if piece:
                pieces.append(piece)
                on_piece(piece)
        thread.join()
        if failure:
            raise failure[0]
        return "".join(pieces)  # clean, as each piece is: the reply is exactly its deltas


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


class ReadableBeforeEnd:
    """A logits processor for `model.generate`: no end-of-sequence (or other stop) token until
    the reply holds readable text.

    An untrained or unlucky model may emit only control bytes or halves of characters and then
    its end token; cleaned, that reply is empty, and the backend fails it. The stop tokens'
    logits are -inf until the generated text, cleaned as the reply will be, has a character
    that is not whitespace. Cheap: only the last few tokens are decoded, and only until then
    (UTF-8 resynchronises at every character, so a window that starts mid-character never makes
    up one, and a character that a new token completes spans at most four byte tokens).
    `max_new_tokens` still bounds the reply: a model that never writes anything readable ends
    there, and the reply fails as before.
    """

    WINDOW = 8  # tokens: a character's four bytes, with room for skipped special tokens

    def __init__(
        self, tokenizer: Any, prompt_length: int, stop_ids: int | list[int] | None
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        # What `generate` stops on: the same value as its `eos_token_id`.
        listed = stop_ids if isinstance(stop_ids, list) else [stop_ids]
        self.stop_ids = sorted({i for i in listed if i is not None})
        self.readable: list[bool] = []  # per sequence in the batch

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if not self.readable:
            self.readable = [False] * input_ids.shape[0]
        start = max(self.prompt_length, input_ids.shape[1] - self.WINDOW)
        for row, done in enumerate(self.readable):
            if not done and input_ids.shape[1] > start:
                window = input_ids[row, start:].tolist()
                text = self.tokenizer.decode(window, skip_special_tokens=True)
                self.readable[row] = bool(clean_generated(text).strip())
            if not self.readable[row] and self.stop_ids:
                scores[row, self.stop_ids] = float("-inf")
        return scores


def _logits_processors(*processors: Any) -> Any:
    from transformers import LogitsProcessorList

    return LogitsProcessorList(processors)


class _Pieces:
    """A streamer for `model.generate` (which calls `put` with the prompt, then with each new
    token, and `end`): the pieces come out of the iterator, on the caller's thread."""

    def __init__(self, tokenizer: Any) -> None:
        self.detokenizer = Detokenizer(tokenizer)
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.queue.put(self.detokenizer.push(value.reshape(-1).tolist()))

    def end(self) -> None:
        try:
            self.queue.put(self.detokenizer.finish())
        finally:
            self.stop()

    def stop(self) -> None:
        self.queue.put(None)

    def __iter__(self) -> Iterator[str]:
        while (piece := self.queue.get()) is not None:
            yield piece


class _WithoutAdapters:
    """The base model's behaviour even when adapters are attached to it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.device = model.device

    def generate(self, **kwargs: Any) -> Any:
        if hasattr(self.model, "disable_adapter") and hasattr(self.model, "peft_config"):
            with self.model.disable_adapter():
                return self.model.generate(**kwargs)
        return self.model.generate(**kwargs)


def _fit(tokenizer: Any, turns: list[Turn], budget: int) -> Any:
    """Prompt ids within `budget` tokens: the oldest history goes first, then the system text
    is cut; the user's message always stays."""
    system, history, message = turns[0], list(turns[1:-1]), turns[-1]
    while True:
        text = prompt([system, *history, message])
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        if ids.shape[1] <= budget:
            return ids
        if history:
            history.pop(0)
        elif len(system.content) > 100:
            system = Turn("system", system.content[: len(system.content) // 2])
        else:
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
        lines += [f"- {p.text}" for p in passages]
    history = [Turn("user" if t.role == "user" else "bot", t.text) for t in event.history]
    return [Turn("system", "\n".join(lines)), *history, Turn("user", event.text)]
