"""Replies from an OpenAI-compatible server (BISHOP_LLM_URL), against a real one on this CPU:
`transformers serve` with a tiny Llama (`transformers_serve.py` says what it adds: serving a
LoRA adapter asked for by name, as vLLM's filesystem resolver does).

What only a vLLM deployment checks: registering adapters with POST /v1/load_lora_adapter (here
the server has no such route, and the reply fails saying so), vLLM's own LoRA loader and its
rank and count limits, and the chat template file given to vLLM with --chat-template (here the
same file is the tiny tokenizer's template)."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bishop_contracts import events as ev
from bishop_contracts.text import clean_generated
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_infra.faults import is_transient
from bishop_text.chat_format import Turn, fit, prompt
from bishop_text.generate import Version, conversation
from bishop_text.jobs import _tar
from bishop_text.llm_server import LlmServer, LlmUnavailable
from bishop_text.scheduler import ReplyCancelled
from bishop_text.settings import TextSettings
from bishop_text.train import ARTIFACT_FILE
from bishop_text.worker import TextWorker

from tests.support.probe import BusProbe
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docker" / "llm" / "chat-template.jinja"
SERVE = Path(__file__).with_name("transformers_serve.py")
PREFIX = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"
MAX_TOKENS = 12
TURNS = [
    Turn("system", "Ты Анна.\nХарактер: спокойная"),
    Turn("user", "Привет!"),
    Turn("bot", "Здравствуй."),
    Turn("user", "Как дела?"),
]


@pytest.fixture(scope="module")
def served_base(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base, with the chat template the `llm` compose service gives vLLM."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("served") / "base"
    shutil.copytree(tiny_base, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = TEMPLATE.read_text()
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lora_version(served_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA version's folder as training leaves it, with random non-zero adapter weights (so
    that its replies are not the base's)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("lora-version")
    torch.manual_seed(5)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(served_base),
        LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "v_proj", "down_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(served_base).save_pretrained(folder)
    (folder / ARTIFACT_FILE).write_text(json.dumps({"kind": "lora"}))
    return folder


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The server's URL and its adapter folder (which it resolves adapter names in)."""
    adapters = tmp_path_factory.mktemp("llm-adapters")
    log = adapters.parent / f"{adapters.name}.log"
    port = free_port()
    command = [sys.executable, str(SERVE), "--device", "cpu", "--log-level", "info"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=adapters,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield f"{url}/v1", adapters
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _worker(tmp_path: Path, base: Path, url: str, adapters: Path, **settings: object) -> TextWorker:
    options: dict[str, object] = {
        "profile": "cpu",
        "base_model": str(base),
        "max_new_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "device": "cpu",
        "llm_url": url,
        "llm_adapter_dir": adapters,
        "llm_adapter_loading": "resolver",
    }
    options.update(settings)
    return TextWorker(
        TextSettings(
            _env_file=None,
            bus_url=f"memory://llm-{uuid.uuid4().hex[:6]}",
            state_url=f"memory://s-{uuid.uuid4().hex[:6]}",
            storage_url=f"file://{tmp_path}/objects",
            cache_dir=tmp_path / "cache",
            **options,
        ),
        group=f"g-{uuid.uuid4().hex[:6]}",
    )


async def _probe(worker: TextWorker) -> BusProbe:
    probe = BusProbe(bus_from_url(worker.settings.bus_url), topics=(Topic.SAVE_RESPONSE,))
    await probe.bus.start()
    return probe


async def _reply(worker: TextWorker, probe: BusProbe, request: ev.InferenceResponse) -> str:
    """The reply's text, checked to be exactly its deltas, in order."""
    await worker.on_reply(request)
    saved = await probe.wait_for(
        lambda e: (
            e.event in ("save_response", "response_failed") and e.message_id == request.message_id
        )
    )
    assert saved.event == "save_response", saved
    deltas = sorted(
        probe.all(lambda e: e.event == "response_delta" and e.message_id == request.message_id),
        key=lambda d: d.index,
    )
    assert [d.index for d in deltas] == list(range(len(deltas)))
    assert "".join(d.text for d in deltas) == saved.generated_text
    assert clean_generated(saved.generated_text) == saved.generated_text
    assert saved.adapter_version_id == request.adapter_version_id
    return saved.generated_text


def _reference(base: Path, adapter: Path | None, text: str) -> str:
    """Greedy generation in this process with the same weights, cleaned: what the reply must be."""
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
        max_new_tokens=MAX_TOKENS,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return clean_generated(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def test_the_servers_chat_template_renders_the_engines_prompt(served_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served_base)
    roles = {"bot": "assistant"}
    messages = [{"role": roles.get(t.role, t.role), "content": t.content} for t in TURNS]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == prompt(TURNS)


def test_long_chats_lose_their_oldest_turns_first() -> None:
    history = [Turn("user" if i % 2 else "bot", f"turn {i} " * 20) for i in range(10)]
    turns = [Turn("system", "persona " * 50), *history, Turn("user", "now")]
    budget = len(prompt([turns[0], *turns[-3:]]))
    fitted = fit(turns, budget, len)
    assert fitted == [turns[0], *turns[-3:]]
    assert fit(turns, 10, len)[-1] == turns[-1]  # the message always stays


async def test_a_reply_streams_from_the_server(
    llm_server: tuple[str, Path], served_base: Path, tmp_path: Path
) -> None:
    url, adapters = llm_server
    worker = _worker(tmp_path, served_base, url, adapters)
    probe = await _probe(worker)
    request = ev.InferenceResponse(
        message_id=uuid.uuid4(), text="Что такое импульс?", persona=ev.Persona(name="Анна")
    )
    text = await _reply(worker, probe, request)
    deltas = probe.all(lambda e: e.event == "response_delta")
    assert len(deltas) >= 2 and text.strip()
    assert text == _reference(served_base, None, prompt(conversation(request, [])))
    await probe.bus.stop()


async def test_the_avatars_adapter_answers_by_name(
    llm_server: tuple[str, Path], served_base: Path, lora_version: Path, tmp_path: Path
) -> None:
    url, adapters = llm_server
    worker = _worker(tmp_path, served_base, url, adapters)
    probe = await _probe(worker)
    key = f"{PREFIX}adapters/{uuid.uuid4()}.tar"
    await worker.storage.put_bytes(key, _tar(lora_version), "application/x-tar")
    version_id = uuid.uuid4()
    replies = []
    for adapter_url in (key, key, None):
        request = ev.InferenceResponse(
            message_id=uuid.uuid4(),
            text="Что такое импульс?",
            persona=ev.Persona(name="Анна"),
            adapter_url=adapter_url,
            adapter_version_id=version_id if adapter_url else None,
        )
        replies.append(await _reply(worker, probe, request))
    published = adapters / f"avatar-{version_id}"
    config = json.loads((published / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(served_base)
    text = prompt(conversation(request, []))
    assert replies[0] == replies[1] == _reference(served_base, lora_version, text)
    assert replies[2] == _reference(served_base, None, text) != replies[0]
    await probe.bus.stop()


async def test_a_stopped_reply_ends_at_its_next_piece(
    llm_server: tuple[str, Path], served_base: Path, tmp_path: Path
) -> None:
    url, adapters = llm_server
    llm = LlmServer(_worker(tmp_path, served_base, url, adapters, max_new_tokens=200).settings)
    reply_id = uuid.uuid4()
    pieces: list[str] = []

    async def on_piece(piece: str) -> None:
        pieces.append(piece)
        assert llm.cancel(reply_id)

    with pytest.raises(ReplyCancelled):
        await llm.generate(Version(None, None, "base"), TURNS, on_piece, reply_id=reply_id)
    assert len(pieces) == 1
    assert not llm.cancel(reply_id)  # nothing left to stop
    await llm.aclose()


async def test_a_server_that_is_down_is_an_outage(served_base: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    worker = _worker(tmp_path, served_base, url, tmp_path / "adapters")
    request = ev.InferenceResponse(message_id=uuid.uuid4(), text="Привет!")
    with pytest.raises(LlmUnavailable) as raised:
        await worker.on_reply(request)  # raised for the bus to retry, nothing published
    assert is_transient(raised.value)


@pytest.mark.parametrize("case", ["unknown model", "no runtime adapter loading", "demo version"])
async def test_what_the_server_cannot_do_fails_the_reply_with_a_reason(
    case: str,
    llm_server: tuple[str, Path],
    served_base: Path,
    lora_version: Path,
    tmp_path: Path,
) -> None:
    url, adapters = llm_server
    settings, folder, says = {
        "unknown model": ({"llm_model": "no-such-model"}, None, "(500)"),
        "no runtime adapter loading": (
            {"llm_adapter_loading": "register"},
            lora_version,
            "load_lora_adapter",
        ),
        "demo version": ({}, tmp_path / "demo-version", "demo-profile model"),
    }[case]
    if case == "demo version":
        folder.mkdir()
        (folder / ARTIFACT_FILE).write_text(json.dumps({"kind": "full"}))
    worker = _worker(tmp_path, served_base, url, adapters, **settings)
    probe = await _probe(worker)
    key = None
    if folder is not None:
        key = f"{PREFIX}adapters/{uuid.uuid4()}.tar"
        await worker.storage.put_bytes(key, _tar(folder), "application/x-tar")
    request = ev.InferenceResponse(
        message_id=uuid.uuid4(), text="Привет!", adapter_url=key, adapter_version_id=uuid.uuid4()
    )
    await asyncio.wait_for(worker.on_reply(request), 60)
    failed = await probe.wait_for(
        lambda e: e.event == "response_failed" and e.message_id == request.message_id
    )
    assert failed.reason.startswith("generation failed: LlmRefused: ")
    assert says in failed.reason
    assert not probe.all(lambda e: e.event == "save_response")
    await probe.bus.stop()
