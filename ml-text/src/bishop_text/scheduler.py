"""The generation scheduler: one thread owns the models while replies are generated, and steps
every reply in flight at once.

A reply that arrives while others are being generated joins them at the next step (step-level
batching, as vLLM and TGI do): the replies that arrived since the last step are prefilled
together (left-padded to the longest prompt), then their key/value caches are left-padded and
stacked onto the running batch of the same model, each row with its own position ids and
attention mask. Replies for different avatars on one base model share a batch, each through its
own LoRA adapter (`batched_lora.py`) or none.
Whole models (the demo profile's versions) each have a batch of their own, and the batches take
steps in turn. A cancelled reply stops at the next step. Nothing here holds a lock around a
reply: the callers only wait on their own queue of pieces.
"""

import logging
import math
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from bishop_contracts.text import clean_generated

log = logging.getLogger("bishop.text")

# Tokens decoded to tell whether a reply has readable text yet: a character's four bytes, with
# room for skipped special tokens (UTF-8 resynchronises at every character).
READABLE_WINDOW = 8
# Cancellations of replies not (yet) being generated, remembered (the newest so many).
CANCELLED_EARLY_KEPT = 10_000
# Prompt tokens (padding included) one prefill pass reads at most: the activations of a pass
# grow with it, so 32 long prompts at once are prefilled in a few passes, not one that runs
# out of memory and fails all 32.
PREFILL_TOKENS = 16_384


class ReplyCancelled(Exception):
    """The reply was cancelled (stopped by its user) before it was complete."""


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    min_new_tokens: int
    temperature: float  # 0: greedy
    top_p: float = 0.9


@dataclass(frozen=True)
class Runner:
    """What generates a reply: the tokenizer, the model to call, and the adapter to use (None:
    none) among the model's `adapters` (an `AdapterSlots`; None: a model without adapters)."""

    tokenizer: Any
    model: Any
    adapter: str | None
    adapters: Any = None


class Selector(Protocol):
    def __call__(self, request: Any, in_use: set[str]) -> tuple[Runner, list[int]]:
        """The runner and the prompt ids for `request`. Adapters in `in_use` must stay."""
        ...


@dataclass(eq=False)
class _Request:
    payload: Any  # what the selector reads (the version and the turns)
    reply_id: uuid.UUID | None
    pieces: "queue.SimpleQueue[str | None]" = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    cut_short: bool = False  # ended by its cancellation
    error: BaseException | None = None


class _Row:
    """One reply in a batch."""

    def __init__(self, request: _Request, runner: Runner, prompt: list[int]) -> None:
        from bishop_text.generate import Detokenizer

        self.request = request
        self.runner = runner
        self.prompt = prompt
        self.tokens: list[int] = []  # generated
        self.position = len(prompt)  # of the next token fed in
        self.readable = False
        self.done = False
        self.detokenizer = Detokenizer(runner.tokenizer)
        eos = runner.tokenizer.eos_token_id
        listed = eos if isinstance(eos, list) else [eos]
        self.stop_ids = sorted({i for i in listed if i is not None})


class _Batch:
    """The replies of one model that step together, with their stacked cache."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.rows: list[_Row] = []
        self.cache: Any = None
        self.mask: Any = None  # [rows, cache length]: 0 for left padding

    def add(self, rows: list[_Row], cache: Any, mask: Any) -> None:
        """Rows prefilled together: their cache and their [rows, length] mask."""
        if not self.rows:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            return
        self.cache, self.mask = _stack(self.cache, self.mask, cache, mask)
        self.rows += rows

    def drop_finished(self) -> None:
        import torch

        keep = [i for i, row in enumerate(self.rows) if not row.done]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache = self.mask = None
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask.index_select(0, index)
        # Columns that are padding for every remaining row are dropped with them.
        first = int((self.mask.sum(0) > 0).nonzero()[0])
        self.cache = _slice(self.cache, index, first)
        self.mask = self.mask[:, first:]


def _layers(cache: Any) -> list[tuple[Any, Any]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _stack(cache: Any, mask: Any, other: Any, other_mask: Any) -> tuple[Any, Any]:
    """Two caches as one batch: the shorter is left-padded (masked) to the longer's length."""
    import torch
    from torch.nn.functional import pad
    from transformers import DynamicCache

    length = max(mask.shape[1], other_mask.shape[1])

    def left(tensor: Any, current: int, dim_from_end: int) -> Any:
        widths = [0, 0] * dim_from_end
        widths[-2] = length - current
        return pad(tensor, widths)

    a, b = mask.shape[1], other_mask.shape[1]
    layers = [
        (
            torch.cat([left(k1, a, 2), left(k2, b, 2)]),
            torch.cat([left(v1, a, 2), left(v2, b, 2)]),
        )
        for (k1, v1), (k2, v2) in zip(_layers(cache), _layers(other), strict=True)
    ]
    masks = torch.cat([left(mask, a, 1), left(other_mask, b, 1)])
    return DynamicCache(ddp_cache_data=layers), masks


def _slice(cache: Any, rows: Any, first: int) -> Any:
    from transformers import DynamicCache

    return DynamicCache(
        ddp_cache_data=[
            (k.index_select(0, rows)[:, :, first:], v.index_select(0, rows)[:, :, first:])
            for k, v in _layers(cache)
        ]
    )


class GenerationScheduler:
    def __init__(
        self,
        select: Selector,
        sampling: Sampling,
        max_batch: int,
        *,
        prefill_tokens: int = PREFILL_TOKENS,
    ) -> None:
        self.select = select
        self.sampling = sampling
        self.max_batch = max(1, max_batch)
        self.prefill_tokens = prefill_tokens
        self._inbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._waiting: list[_Request] = []  # admitted later (the batch is full)
        self._batches: dict[int, _Batch] = {}
        self._by_reply: dict[uuid.UUID, _Request] = {}
        self._cancelled_early: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._guard = threading.Lock()  # for _by_reply, shared with `cancel`
        self._thread: threading.Thread | None = None
        self.steps = 0  # decode steps taken (all batches), for tests and benches

    # -- callers' side (any thread)

    def generate(
        self, payload: Any, on_piece: Callable[[str], None], reply_id: uuid.UUID | None = None
    ) -> str:
        """Blocking: the reply's text; each clean piece goes to `on_piece` (on this thread) as
        it is made. Raises ReplyCancelled if `cancel(reply_id)` came first."""
        request = _Request(payload, reply_id)
        if reply_id is not None:
            with self._guard:
                self._by_reply[reply_id] = request
                if reply_id in self._cancelled_early:
                    del self._cancelled_early[reply_id]
                    request.cancelled.set()
        self._start()
        self._inbox.put(request)
        pieces = []
        try:
            while (piece := request.pieces.get()) is not None:
                if piece:
                    pieces.append(piece)
                    on_piece(piece)
        except BaseException:
            request.cancelled.set()  # nobody reads the rest
            raise
        finally:
            if reply_id is not None:
                with self._guard:
                    self._by_reply.pop(reply_id, None)
        if request.error is not None:
            raise request.error
        if request.cut_short:
            raise ReplyCancelled(reply_id)
        return "".join(pieces)

    def cancel(self, reply_id: uuid.UUID) -> bool:
        """Stop that reply at the next step; False if it is not being generated here."""
        with self._guard:
            request = self._by_reply.get(reply_id)
            if request is None:
                # Perhaps it has not reached the scheduler yet (its passages are being found):
                # remembered for a while, so that it is not generated when it comes.
                self._cancelled_early[reply_id] = None
                while len(self._cancelled_early) > CANCELLED_EARLY_KEPT:
                    self._cancelled_early.popitem(last=False)
                return False
        request.cancelled.set()
        return True

    @property
    def in_flight(self) -> int:
        return sum(len(b.rows) for b in self._batches.values())

    def _start(self) -> None:
        with self._guard:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="generation-scheduler", daemon=True
                )
                self._thread.start()

    # -- the scheduler's thread

    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                try:
                    self._turn()
                except BaseException as exc:
                    # Whatever broke, no caller may wait for ever: every reply in flight fails
                    # with it, and the scheduler goes on with the next ones.
                    log.exception("the generation scheduler failed its replies in flight")
                    for batch in self._batches.values():
                        for row in batch.rows:
                            row.request.error = exc
                            self._end(row.request)
                    self._batches.clear()

    def _turn(self) -> None:
        """Admit what waits (as far as the batch has room), then one step of every batch."""
        if not self.in_flight and not self._waiting:
            self._waiting.append(self._inbox.get())  # idle: wait for work
        while True:
            try:
                self._waiting.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        waiting, self._waiting = self._waiting, []
        chosen: list[_Row] = []
        for request in waiting:
            if self.in_flight + len(chosen) >= self.max_batch:
                self._waiting.append(request)
            elif (row := self._choose_runner(request, chosen)) is not None:
                chosen.append(row)
        by_model: dict[int, list[_Row]] = {}
        for row in chosen:
            by_model.setdefault(id(row.runner.model), []).append(row)
        for rows in by_model.values():
            for group in self._prefill_groups(rows):
                self._prefill(group)
        for key, batch in list(self._batches.items()):
            if batch.rows:
                self._step(batch)
            if not batch.rows:
                del self._batches[key]

    def _in_use(self, chosen: list[_Row]) -> set[str]:
        rows = [row for batch in self._batches.values() for row in batch.rows] + chosen
        return {row.runner.adapter for row in rows if row.runner.adapter}

    def _choose_runner(self, request: _Request, chosen: list[_Row]) -> _Row | None:
        """The request's row, with its runner and prompt (None: it ended)."""
        if request.cancelled.is_set():
            request.cut_short = True
            self._end(request)
            return None
        try:
            runner, prompt = self.select(request.payload, self._in_use(chosen))
        except BaseException as exc:
            request.error = exc
            self._end(request)
            return None
        return _Row(request, runner, prompt)

    def _prefill_groups(self, rows: list[_Row]) -> list[list[_Row]]:
        """Rows in passes of at most `prefill_tokens` padded tokens (a longer prompt alone);
        similar lengths together, so that little of a pass is padding."""
        groups: list[list[_Row]] = []
        for row in sorted(rows, key=lambda r: r.position):
            # Sorted, so this row's prompt is the longest of the group it would join.
            if groups and (len(groups[-1]) + 1) * row.position <= self.prefill_tokens:
                groups[-1].append(row)
            else:
                groups.append([row])
        return groups

    def _prefill(self, rows: list[_Row]) -> None:
        """One forward pass over the prompts of `rows` (one model), left-padded to the longest;
        then their first tokens, and the rows join their model's batch."""
        import torch
        from transformers import DynamicCache

        runner = rows[0].runner
        model = runner.model
        try:
            length = max(row.position for row in rows)
            pad = runner.tokenizer.pad_token_id or 0  # any id: padding is masked out
            ids = [[pad] * (length - row.position) + row.prompt for row in rows]
            mask = torch.tensor(
                [[0] * (length - row.position) + [1] * row.position for row in rows],
                device=model.device,
            )
            with _adapters(rows):
                out = model(
                    input_ids=torch.tensor(ids, device=model.device),
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    past_key_values=DynamicCache(config=model.config),
                    use_cache=True,
                    # Only the last position's scores are read: the prompts' other positions
                    # would cost rows x length x vocabulary floats.
                    logits_to_keep=1,
                )
            for row, token in zip(rows, self._choose(rows, out.logits[:, -1]), strict=True):
                self._take(row, token)
            batch = self._batches.setdefault(id(model), _Batch(model))
            batch.add(rows, out.past_key_values, mask)
            batch.drop_finished()
        except BaseException as exc:
            log.exception("%d replies could not be prefilled", len(rows))
            for row in rows:
                if not row.done:
                    row.done = True
                    row.request.error = exc
                    self._end(row.request)
            if (batch := self._batches.get(id(model))) is not None:
                batch.drop_finished()  # the rows that joined it are done now

    def _step(self, batch: _Batch) -> None:
        import torch

        model = batch.model
        rows = batch.rows
        try:
            ones = torch.ones(len(rows), 1, dtype=batch.mask.dtype, device=batch.mask.device)
            mask = torch.cat([batch.mask, ones], dim=1)
            ids = torch.tensor([[row.tokens[-1]] for row in rows], device=model.device)
            positions = torch.tensor([[row.position] for row in rows], device=model.device)
            with _adapters(rows):
                out = model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=batch.cache,
                    use_cache=True,
                )
        except BaseException as exc:
            log.exception("a generation step failed for %d replies", len(rows))
            for row in rows:
                row.request.error = exc
                row.done = True
                self._end(row.request)
            batch.rows = []
            return
        self.steps += 1
        batch.cache, batch.mask = out.past_key_values, mask
        tokens = self._choose(rows, out.logits[:, -1])
        for row, token in zip(rows, tokens, strict=True):
            row.position += 1
            self._take(row, token)
        batch.drop_finished()

    def _take(self, row: _Row, token: int) -> None:
        """Pass on the text the row's new token completes, or end the row."""
        request = row.request
        if request.cancelled.is_set():
            request.cut_short = True
            self._finish(row)
            return
        if token in row.stop_ids:
            self._finish(row)
            return
        row.tokens.append(token)
        request.pieces.put(row.detokenizer.push([token]))
        if not row.readable:
            row.readable = readable(row.runner.tokenizer, row.tokens)
        if len(row.tokens) >= self.sampling.max_new_tokens:
            self._finish(row)

    def _choose(self, rows: list[_Row], logits: Any) -> list[int]:
        """The next token of each row, from its logits (one row each), all rows at once."""
        import torch

        scores = logits.float()
        # No end before the minimum length, nor before the reply has readable text: an
        # untrained or unlucky model may emit only control bytes or halves of characters
        # and then its end token, which cleaning would turn into an empty reply.
        # `max_new_tokens` still bounds a reply that never writes anything readable.
        held = [
            (i, row.stop_ids)
            for i, row in enumerate(rows)
            if row.stop_ids and (len(row.tokens) < self.sampling.min_new_tokens or not row.readable)
        ]
        if held:
            scores = scores.clone()
            for i, stop_ids in held:
                scores[i, stop_ids] = -math.inf
        if self.sampling.temperature <= 0:
            return scores.argmax(-1).tolist()
        probs = torch.softmax(scores / self.sampling.temperature, dim=-1)
        ordered, order = probs.sort(dim=-1, descending=True)
        # Top-p: the smallest set of most likely tokens whose probability reaches p.
        ordered[ordered.cumsum(-1) - ordered > self.sampling.top_p] = 0
        picked = torch.multinomial(ordered, 1)
        return order.gather(-1, picked).squeeze(-1).tolist()

    def _finish(self, row: _Row) -> None:
        row.done = True
        row.request.pieces.put(row.detokenizer.finish())
        self._end(row.request)

    @staticmethod
    def _end(request: _Request) -> None:
        request.pieces.put(None)


def readable(tokenizer: Any, tokens: list[int]) -> bool:
    """Whether the last tokens make readable text (once true for a reply, it stays true)."""
    text = tokenizer.decode(tokens[-READABLE_WINDOW:], skip_special_tokens=True)
    return bool(clean_generated(text).strip())


def _adapters(rows: list[_Row]) -> AbstractContextManager[None]:
    """Each row through its own adapter, for the passes inside."""
    adapters = rows[0].runner.adapters
    if adapters is None:
        return nullcontext()
    return adapters.selected([row.runner.adapter for row in rows])
