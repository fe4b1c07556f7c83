"""Replies through the generation scheduler, for tests that bring their own tokenizer and model
(rigged, scripted or recorded)."""

from typing import Any

from bishop_text.chat_format import Turn, prompt
from bishop_text.scheduler import GenerationScheduler, Runner, Sampling


def scheduler_for(
    tokenizer: Any,
    model: Any,
    *,
    max_new_tokens: int = 40,
    temperature: float = 0.0,
    min_new_tokens: int = 1,
    max_batch: int = 8,
    prefill_tokens: int = 16_384,
) -> GenerationScheduler:
    def select(turns: list[Turn], in_use: set[str]) -> tuple[Runner, list[int]]:
        ids = tokenizer(prompt(turns), add_special_tokens=False)["input_ids"]
        return Runner(tokenizer, model, None), ids

    sampling = Sampling(max_new_tokens, min(min_new_tokens, max_new_tokens), temperature)
    return GenerationScheduler(select, sampling, max_batch, prefill_tokens=prefill_tokens)


def reply(scheduler: GenerationScheduler, turns: list[Turn]) -> tuple[list[str], str]:
    pieces: list[str] = []
    text = scheduler.generate(turns, pieces.append)
    return pieces, text


def prefill(model_kwargs: dict[str, Any]) -> bool:
    """Whether a model call reads prompts (its cache is empty), not one decode step."""
    return model_kwargs["past_key_values"].get_seq_length() == 0


class Recording:
    """A model whose decode steps are kept: the tokens fed back are the generated ones (all but
    the last chosen, which ends the reply and is never fed)."""

    def __init__(self, model: Any) -> None:
        self.model, self.device, self.config = model, model.device, model.config
        self.fed: list[int] = []

    def __call__(self, **kwargs: Any) -> Any:
        if not prefill(kwargs):
            self.fed += kwargs["input_ids"][:, -1].tolist()
        return self.model(**kwargs)


class Biased(Recording):
    """A model whose logit for `token` is raised by `bias` at every step."""

    def __init__(self, model: Any, token: int, bias: float) -> None:
        super().__init__(model)
        self.token, self.bias = token, bias

    def __call__(self, **kwargs: Any) -> Any:
        out = super().__call__(**kwargs)
        out.logits[..., self.token] += self.bias
        return out


class Scripted(Recording):
    """A real model made to say `ids` (one reply at a time), then its end token."""

    def __init__(self, model: Any, ids: list[int], eos: int) -> None:
        super().__init__(model)
        self.script, self.eos = ids, eos
        self.step = 0

    def __call__(self, **kwargs: Any) -> Any:
        out = super().__call__(**kwargs)
        if prefill(kwargs):
            self.step = 0
        token = self.script[self.step] if self.step < len(self.script) else self.eos
        self.step += 1
        out.logits[..., -1, :] = -1e9
        out.logits[..., -1, token] = 0.0
        return out
