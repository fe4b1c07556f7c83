"""Replies from the avatar's own adapter on one shared base, streamed as deltas."""

import uuid
from pathlib import Path

import pytest
from bishop_contracts import events as ev
from bishop_contracts.text import clean_generated
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_text.chat_format import prompt
from bishop_text.dataset import build
from bishop_text.generate import conversation
from bishop_text.ingest import Transcript
from bishop_text.ingest.clean import chunks
from bishop_text.jobs import _tar
from bishop_text.settings import TextSettings
from bishop_text.train import TrainArgs, main
from bishop_text.worker import TextWorker

from tests.support.probe import BusProbe
from tests.text.corpus import lecture

PREFIX = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"


def _adapter(base: Path, seed: int, out: Path) -> Path:
    passages = chunks(lecture(10, seed=seed), 160) * 8
    data = out.with_suffix(".jsonl")
    data.write_bytes(build([Transcript(text="", passages=passages)]).to_jsonl())
    main(
        TrainArgs(
            dataset=str(data),
            output_dir=str(out),
            base_model=str(base),
            max_steps=25,
            batch_size=8,
            learning_rate=1e-2,
            device="cpu",
            seed=seed,
        )
    )
    return out


@pytest.fixture(scope="module")
def adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: _adapter(tiny_base, seed, root / name) for name, seed in (("anna", 1), ("boris", 7))
    }


@pytest.fixture
async def worker(tiny_base: Path, tmp_path: Path) -> TextWorker:
    settings = TextSettings(
        _env_file=None,
        bus_url=f"memory://text-{uuid.uuid4().hex[:6]}",
        state_url=f"memory://s-{uuid.uuid4().hex[:6]}",
        storage_url=f"file://{tmp_path}/objects",
        profile="cpu",
        base_model=str(tiny_base),
        cache_dir=tmp_path / "cache",
        max_new_tokens=10,
        temperature=0.0,
        device="cpu",
    )
    return TextWorker(settings, group=f"g-{uuid.uuid4().hex[:6]}")


def _reference(base: Path, adapter: Path | None, text: str) -> str:
    """Greedy generation with a freshly loaded model, cleaned: what the reply must be."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    out = model.generate(
        input_ids=ids,
        attention_mask=ids.new_ones(ids.shape),
        max_new_tokens=10,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return clean_generated(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


async def test_each_avatar_answers_with_its_own_adapter(
    worker: TextWorker, adapters: dict[str, Path], tiny_base: Path
) -> None:
    probe = BusProbe(bus_from_url(worker.settings.bus_url), topics=(Topic.SAVE_RESPONSE,))
    await probe.bus.start()
    keys = {}
    for name, folder in adapters.items():
        keys[name] = f"{PREFIX}adapters/{name}.tar"
        await worker.storage.put_bytes(keys[name], _tar(folder), "application/x-tar")

    question = "Что такое импульс и энергия?"
    replies = {}
    for name in ("anna", "boris", "anna", None):
        request = ev.InferenceResponse(
            message_id=uuid.uuid4(),
            text=question,
            persona=ev.Persona(name="Анна"),
            adapter_url=keys.get(name),
            adapter_version_id=uuid.uuid4() if name else None,
        )
        await worker.reply(request)
        saved = await probe.wait_for(
            lambda e, r=request: e.event == "save_response" and e.message_id == r.message_id
        )
        deltas = probe.all(
            lambda e, r=request: e.event == "response_delta" and e.message_id == r.message_id
        )
        assert (
            "".join(d.text for d in sorted(deltas, key=lambda d: d.index)) == saved.generated_text
        )
        assert saved.adapter_version_id == request.adapter_version_id
        text = prompt(conversation(request, []))
        assert saved.generated_text == _reference(
            tiny_base, adapters.get(name) if name else None, text
        )
        replies.setdefault(name, []).append(saved.generated_text)
    assert replies["anna"][0] == replies["anna"][1]  # switching back to a cached adapter
    assert len({replies["anna"][0], replies["boris"][0], replies[None][0]}) == 3
    await probe.bus.stop()


async def test_adapters_are_cached_and_evicted(
    worker: TextWorker, adapters: dict[str, Path]
) -> None:
    worker.settings.adapter_cache_size = 1
    for name, folder in adapters.items():
        key = f"{PREFIX}adapters/{name}.tar"
        await worker.storage.put_bytes(key, _tar(folder), "application/x-tar")
        request = ev.InferenceResponse(message_id=uuid.uuid4(), text="вопрос", adapter_url=key)
        await worker.reply(request)
    adapters = worker.engine._base[2]  # type: ignore[index]
    assert len(adapters) == 1  # the older adapter was unloaded from the shared base


async def test_generation_failure_is_reported(worker: TextWorker) -> None:
    probe = BusProbe(bus_from_url(worker.settings.bus_url), topics=(Topic.SAVE_RESPONSE,))
    await probe.bus.start()
    request = ev.InferenceResponse(
        message_id=uuid.uuid4(), text="вопрос", adapter_url=f"{PREFIX}adapters/missing.tar"
    )
    await worker.on_reply(request)
    failed = await probe.wait_for(
        lambda e: e.event == "response_failed" and e.message_id == request.message_id
    )
    assert "ObjectNotFound" in failed.reason
    await probe.bus.stop()
