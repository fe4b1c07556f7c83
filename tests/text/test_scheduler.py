"""The generation scheduler: replies in flight are generated together, each through its own
avatar's adapter, exactly as each would be alone; a reply that arrives later joins at the next
step; a cancelled one stops at the next step and keeps its text."""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from bishop_text.chat_format import Turn, prompt
from bishop_text.generate import Engine, Version
from bishop_text.scheduler import ReplyCancelled
from bishop_text.settings import TextSettings
from bishop_text.train import ARTIFACT_FILE


def _adapter(base: Path, folder: Path, seed: int) -> Version:
    """A LoRA adapter with random, non-zero weights: each one changes what the model says."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=8, lora_alpha=32, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(folder)
    (folder / ARTIFACT_FILE).write_text(json.dumps({"kind": "lora"}))
    return Version(f"adapters/{folder.name}", folder, "lora")


@pytest.fixture(scope="module")
def versions(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Version]:
    root = tmp_path_factory.mktemp("adapters")
    return [_adapter(tiny_base, root / f"avatar-{i}", seed=i) for i in range(3)]


def _engine(tiny_base: Path, tmp_path: Path, **overrides: Any) -> Engine:
    settings = {
        "profile": "cpu",
        "base_model": str(tiny_base),
        "cache_dir": tmp_path,
        "device": "cpu",
        "max_new_tokens": 24,
        "min_new_tokens": 24,  # fixed lengths: every reply runs its whole budget
        "temperature": 0.0,
    }
    return Engine(TextSettings(_env_file=None, **{**settings, **overrides}))


def _turns(n: int) -> list[Turn]:
    return [Turn("system", f"Ты аватар номер {n}."), Turn("user", "Расскажи о себе " * (n + 1))]


def _alone(engine: Engine, version: Version, turns: list[Turn]) -> str:
    return engine.generate(version, turns, lambda _: None)


def test_concurrent_replies_for_different_avatars_each_equal_their_reply_alone(
    tiny_base: Path, versions: list[Version], tmp_path: Path
) -> None:
    engine = _engine(tiny_base, tmp_path)
    jobs = [
        (versions[0], _turns(0)),
        (versions[1], _turns(1)),
        (Version(None, None, "base"), _turns(2)),
    ]
    alone = [_alone(engine, v, t) for v, t in jobs]
    assert len(set(alone)) == 3  # each adapter (and the base) says something of its own

    steps = engine.scheduler.steps
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda job: _alone(engine, *job), jobs))
    assert together == alone
    # They were stepped as one batch: fewer steps than one after another.
    assert engine.scheduler.steps - steps < 2 * 24


def test_a_reply_that_arrives_later_joins_the_running_batch(
    tiny_base: Path, versions: list[Version], tmp_path: Path
) -> None:
    engine = _engine(tiny_base, tmp_path, max_new_tokens=40, min_new_tokens=40)
    first, second = (versions[0], _turns(3)), (versions[2], _turns(0))
    alone = [_alone(engine, *first), _alone(engine, *second)]

    started = threading.Event()
    pieces: list[str] = []

    def on_piece(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 5:
            started.set()

    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(engine.generate, first[0], first[1], on_piece)
        assert started.wait(30)
        in_flight = engine.scheduler.in_flight
        joined = pool.submit(_alone, engine, *second)
        assert [running.result(60), joined.result(60)] == alone
    assert in_flight == 1


def test_replies_that_arrive_together_are_prefilled_in_one_pass_each_as_it_would_be_alone(
    tiny_base: Path, tmp_path: Path
) -> None:
    from tests.text.scheduled import Recording, prefill, reply, scheduler_for

    engine = _engine(tiny_base, tmp_path)
    runner = engine._select(Version(None, None, "base"), set())

    class Gated(Recording):
        """Holds its first prefill until the others have arrived; counts each prefill's rows."""

        def __init__(self, model: Any) -> None:
            super().__init__(model)
            self.prefills: list[int] = []
            self.entered, self.gate = threading.Event(), threading.Event()

        def __call__(self, **kwargs: Any) -> Any:
            if prefill(kwargs):
                self.prefills.append(len(kwargs["input_ids"]))
                self.entered.set()
                assert self.gate.wait(30)
            return super().__call__(**kwargs)

    model = Gated(runner.model)
    model.gate.set()
    scheduler = scheduler_for(runner.tokenizer, model, max_new_tokens=12, min_new_tokens=12)
    prompts = [_turns(n) for n in range(4)]  # of different lengths: padded to the longest
    alone = [reply(scheduler, turns)[1] for turns in prompts]
    assert len(set(alone)) > 1

    def burst(scheduler: Any) -> list[str]:
        """The first reply's prefill is held until the other three are queued behind it."""
        model.prefills.clear()
        model.entered.clear()
        model.gate.clear()
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(reply, scheduler, prompts[0])
            assert model.entered.wait(30)
            others = [pool.submit(reply, scheduler, turns) for turns in prompts[1:]]
            time.sleep(0.5)
            model.gate.set()
            return [first.result(60)[1]] + [f.result(60)[1] for f in others]

    assert burst(scheduler) == alone
    assert model.prefills == [1, 3]
    # A pass reads at most so many prompt tokens, padding included: the two shorter prompts
    # fit in one pass, and the longest goes alone.
    tokenizer = runner.tokenizer
    lengths = [len(tokenizer(prompt(t), add_special_tokens=False)["input_ids"]) for t in prompts]
    budget = 2 * lengths[2]
    assert 3 * lengths[3] > budget
    small = scheduler_for(
        runner.tokenizer, model, max_new_tokens=12, min_new_tokens=12, prefill_tokens=budget
    )
    assert burst(small) == alone
    assert model.prefills == [1, 2, 1]


def test_a_prefill_that_cannot_even_be_built_fails_its_replies_instead_of_hanging(
    tiny_base: Path, tmp_path: Path
) -> None:
    from tests.text.scheduled import reply, scheduler_for

    engine = _engine(tiny_base, tmp_path)
    runner = engine._select(Version(None, None, "base"), set())

    class BrokenPad:
        def __init__(self, tokenizer: Any) -> None:
            self._tokenizer = tokenizer

        def __getattr__(self, name: str) -> Any:
            return getattr(self._tokenizer, name)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return self._tokenizer(*args, **kwargs)

        @property
        def pad_token_id(self) -> int:
            raise RuntimeError("the tokenizer broke")

    scheduler = scheduler_for(BrokenPad(runner.tokenizer), runner.model, max_new_tokens=4)
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            reply(scheduler, _turns(0))
        except BaseException as exc:
            outcome.append(exc)

    # A daemon thread: if the caller hangs, the test fails instead of hanging with it.
    caller = threading.Thread(target=ask, daemon=True)
    caller.start()
    caller.join(30)
    assert not caller.is_alive(), "the caller still waits for its reply"
    assert isinstance(outcome[0], RuntimeError) and "tokenizer broke" in str(outcome[0])


def test_a_cancelled_reply_stops_at_the_next_step_and_keeps_its_text(
    tiny_base: Path, versions: list[Version], tmp_path: Path
) -> None:
    engine = _engine(tiny_base, tmp_path, max_new_tokens=400, min_new_tokens=400)
    reply_id = uuid.uuid4()
    pieces: list[str] = []
    steps_at_cancel: list[int] = []

    def on_piece(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 10 and not steps_at_cancel:
            steps_at_cancel.append(engine.scheduler.steps)
            assert engine.cancel(reply_id)

    other = (versions[1], _turns(1))
    with ThreadPoolExecutor(2) as pool:
        neighbour = pool.submit(_alone, engine, *other)
        with pytest.raises(ReplyCancelled):
            engine.generate(versions[0], _turns(0), on_piece, reply_id)
        stopped_after = engine.scheduler.steps - steps_at_cancel[0]
        # The neighbour in the same batch goes on to its own end.
        assert neighbour.result(120)
    # Pieces are handed over as they are made, so the cancel lands one or two steps later.
    assert stopped_after <= 3, stopped_after
    assert 10 <= len(pieces) <= 14
    assert not engine.cancel(reply_id)  # it is gone
    assert not engine.cancel(uuid.uuid4())


def test_a_busy_engine_still_answers_a_newcomer_quickly(
    tiny_base: Path, versions: list[Version], tmp_path: Path
) -> None:
    """A reply does not wait for the replies in flight to end: its first piece comes within a
    few steps of its arrival."""
    engine = _engine(tiny_base, tmp_path, max_new_tokens=300, min_new_tokens=300)
    with ThreadPoolExecutor(3) as pool:
        long = [pool.submit(_alone, engine, versions[i], _turns(i)) for i in range(2)]
        while engine.scheduler.in_flight < 2:
            time.sleep(0.01)
        arrived = engine.scheduler.steps
        first: list[tuple[int, int]] = []

        def on_piece(_: str) -> None:
            if not first:
                first.append((engine.scheduler.steps, engine.scheduler.in_flight))

        engine.generate(versions[2], _turns(2), on_piece)
        steps, in_flight = first[0]
        assert steps - arrived <= 3
        assert in_flight == 3  # the long ones were still running beside it
        for f in long:
            f.result(120)


def test_a_reply_cancelled_before_it_reaches_the_scheduler_is_not_generated(
    tiny_base: Path, tmp_path: Path
) -> None:
    engine = _engine(tiny_base, tmp_path)
    reply_id = uuid.uuid4()
    assert not engine.cancel(reply_id)  # still finding its passages, say
    steps = engine.scheduler.steps
    with pytest.raises(ReplyCancelled):
        engine.generate(Version(None, None, "base"), _turns(0), lambda _: None, reply_id)
    assert engine.scheduler.steps == steps


def test_a_model_that_fails_mid_reply_fails_its_replies_and_the_next_one_is_served(
    tiny_base: Path, versions: list[Version], tmp_path: Path
) -> None:
    from tests.text.scheduled import Recording, reply, scheduler_for

    engine = _engine(tiny_base, tmp_path)
    runner = engine._select(Version(None, None, "base"), set())

    class Breaks(Recording):
        def __call__(self, **kwargs: Any) -> Any:
            if len(self.fed) == 3:
                self.fed.append(-1)  # once
                raise RuntimeError("CUDA out of memory (pretend)")
            return super().__call__(**kwargs)

    scheduler = scheduler_for(runner.tokenizer, Breaks(runner.model), max_new_tokens=12)
    with pytest.raises(RuntimeError, match="out of memory"):
        reply(scheduler, _turns(0))
    pieces, text = reply(scheduler, _turns(1))  # the scheduler goes on
    assert text == "".join(pieces)
