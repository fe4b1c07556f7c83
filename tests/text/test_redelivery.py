"""ml-text over the in-process bus: a redelivered event is skipped, not recomputed; an outage of
storage is raised for the bus to retry, never turned into a failure the user sees."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_text.ingest import Transcript
from bishop_text.ingest.clean import chunks
from bishop_text.settings import TextSettings
from bishop_text.worker import TextWorker
from urllib3.exceptions import MaxRetryError

from tests.support.calls import counted, failing_first, storage_down
from tests.support.probe import BusProbe
from tests.text import hostile
from tests.text.corpus import lecture

OUTPUTS = (Topic.MATERIAL_STATUS, Topic.TRAIN_STATUS, Topic.SAVE_RESPONSE, Topic.WORKER_HEALTH)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[TextWorker, BusProbe]]:
    run = uuid.uuid4().hex[:8]
    settings = TextSettings(
        _env_file=None,
        bus_url=f"memory://redelivery-{run}",
        state_url=f"memory://redelivery-{run}",
        storage_url=f"file://{tmp_path}/objects",
        temp_dir=tmp_path / "tmp",
        profile="demo",
        cache_dir=tmp_path / "cache",
        train_max_steps=2,
        batch_size=8,
        max_new_tokens=4,
        temperature=0.0,
        progress_every_seconds=0.0,
    )
    worker = TextWorker(settings, group=f"ml-text-{run}")
    probe = BusProbe(bus_from_url(settings.bus_url), topics=OUTPUTS)
    await probe.bus.start()
    await worker.storage.ensure_ready()
    await worker.bus.start()
    yield worker, probe
    await worker.bus.stop()
    await worker.jobs.shutdown()
    await worker.ingest.close()
    await probe.bus.stop()


def prefix() -> str:
    return f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"


async def text_material(worker: TextWorker) -> ev.MaterialUploaded:
    key = f"{prefix()}text/{uuid.uuid4()}.txt"
    await worker.storage.put_bytes(key, lecture(4).encode(), "text/plain")
    return ev.MaterialUploaded(
        avatar_id=uuid.UUID(key.split("/")[3]),
        material_id=uuid.uuid4(),
        type="basic",
        kind="text",
        url=key,
        filename="lecture.txt",
    )


async def train_start(worker: TextWorker) -> ev.TrainStart:
    avatar = prefix()
    text = lecture(20)
    transcript = f"{avatar}transcripts/m.json"
    await worker.storage.put_bytes(
        transcript, Transcript(text=text, passages=chunks(text, 160)).to_json(), "application/json"
    )
    return ev.TrainStart(
        avatar_id=uuid.UUID(avatar.split("/")[3]),
        run_id=uuid.uuid4(),
        train_materials=[
            ev.TrainMaterial(
                id=uuid.uuid4(), type="basic", url=f"{avatar}text/m.txt", transcript_url=transcript
            )
        ],
    )


def fake_training(
    monkeypatch: pytest.MonkeyPatch, worker: TextWorker, until: asyncio.Event | None = None
) -> list[Path]:
    """Training in no time (the child process is tested elsewhere): an empty artifact, once
    `until` is set; returns the work folders of the runs."""
    runs: list[Path] = []

    async def train(start: Any, job: Any, args: Any, work: Path) -> dict[str, Any]:
        runs.append(work)
        if until is not None:
            await until.wait()
        out = Path(args.output_dir)
        out.mkdir()
        (out / "bishop.json").write_text("{}")
        return {"kind": "full", "config": {}, "metrics": {"train_loss": 1.0}}

    monkeypatch.setattr(worker.jobs, "_in_process", train)
    return runs


def of(kind: str, **ids: uuid.UUID) -> Any:
    return lambda e: e.event == kind and all(getattr(e, k, None) == v for k, v in ids.items())


async def test_a_redelivered_material_is_not_ingested_again(
    running: tuple[TextWorker, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, probe = running
    extracted = counted(monkeypatch, worker.ingest, "transcript")
    upload = await text_material(worker)
    await probe.publish(Topic.MATERIALS, upload)
    await probe.publish(Topic.MATERIALS, upload)
    # One consumer per topic handles events in order: once the next upload is done, so is the
    # duplicate.
    after = await text_material(worker)
    await probe.publish(Topic.MATERIALS, after)
    await probe.wait_for(of("material_processed", material_id=after.material_id), timeout=30)
    assert len(extracted) == 2
    assert len(probe.all(of("material_processed", material_id=upload.material_id))) == 1


async def test_a_redelivered_reply_is_not_generated_again(
    running: tuple[TextWorker, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, probe = running
    generated = counted(monkeypatch, worker.engine, "generate")
    request = ev.InferenceResponse(
        message_id=uuid.uuid4(), text="Что такое импульс?", persona=ev.Persona(name="Анна")
    )
    await probe.publish(Topic.LLM_INFERENCE, request)
    await probe.publish(Topic.LLM_INFERENCE, request)
    after = request.model_copy(update={"event_id": uuid.uuid4(), "message_id": uuid.uuid4()})
    await probe.publish(Topic.LLM_INFERENCE, after)
    # Replies are handled side by side: either may finish first.
    await probe.wait_for(of("save_response", message_id=after.message_id), timeout=60)
    await probe.wait_for(of("save_response", message_id=request.message_id), timeout=60)
    assert len(generated) == 2
    assert len(probe.all(of("save_response", message_id=request.message_id))) == 1

    # Health checks are exempt: every ping gets its answer, even a repeated one.
    ping = ev.HealthCheck()
    await probe.publish(Topic.HEALTH_CHECK_TEXT, ping)
    await probe.publish(Topic.HEALTH_CHECK_TEXT, ping)
    async with asyncio.timeout(15):
        while len(probe.all(of("worker_health", in_reply_to=ping.event_id))) < 2:
            await asyncio.sleep(0.05)


async def test_a_redelivered_train_start_is_not_trained_again(
    running: tuple[TextWorker, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, probe = running
    started = counted(monkeypatch, worker.jobs, "start")
    release = asyncio.Event()
    trained = fake_training(monkeypatch, worker, until=release)
    start = await train_start(worker)

    async def dealt_with() -> None:
        # A run with no text fails at once; once it has, what was published before it was
        # handled (one consumer per topic, in order).
        after = ev.TrainStart(avatar_id=uuid.uuid4(), run_id=uuid.uuid4(), train_materials=[])
        await probe.publish(Topic.LLM_TRAIN, after)
        await probe.wait_for(of("train_failed", run_id=after.run_id), timeout=30)

    await probe.publish(Topic.LLM_TRAIN, start)
    async with asyncio.timeout(30):
        while not trained:
            await asyncio.sleep(0.05)
    await probe.publish(Topic.LLM_TRAIN, start)  # while the run goes on
    await dealt_with()
    release.set()
    await probe.wait_for(of("train_finished", run_id=start.run_id), timeout=30)
    await probe.publish(Topic.LLM_TRAIN, start)  # after it finished
    await dealt_with()
    assert len(started) == 3  # the run and the two runs without text
    assert len(trained) == 1
    assert len(probe.all(of("train_finished", run_id=start.run_id))) == 1
    assert not probe.all(of("train_failed", run_id=start.run_id))


def stream_failing_first(monkeypatch: pytest.MonkeyPatch, storage: Any, times: int) -> list[int]:
    """`storage.read_stream` raises `storage_down()` the first `times` calls, then works."""
    original = storage.read_stream
    failures = [0]

    async def flaky(key: str, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        if failures[0] < times:
            failures[0] += 1
            raise storage_down()
        async for chunk in original(key, *args, **kwargs):
            yield chunk

    monkeypatch.setattr(storage, "read_stream", flaky)
    return failures


async def test_storage_down_while_fetching_a_material_is_retried_not_failed(
    running: tuple[TextWorker, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, probe = running
    stream_failing_first(monkeypatch, worker.storage, times=1)
    upload = await text_material(worker)
    with pytest.raises(MaxRetryError):
        await worker.on_material(upload)

    # Through the bus: retried while the outage lasts, then processed.
    failures = stream_failing_first(monkeypatch, worker.storage, times=2)
    upload = await text_material(worker)
    await probe.publish(Topic.MATERIALS, upload)
    await probe.wait_for(of("material_processed", material_id=upload.material_id), timeout=30)
    assert failures == [2]
    assert not probe.all(lambda e: e.event == "material_failed")


async def test_an_oserror_from_extraction_fails_the_material(
    running: tuple[TextWorker, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder's OSError is the file's fault, not an outage: failed at once, with a reason;
    raised in the ingest child, it reaches the worker as itself."""
    worker, probe = running
    monkeypatch.setattr(worker.ingest, "extract", hostile.extract_whose_decoder_gives_up)
    upload = await text_material(worker)
    await worker.on_material(upload)
    failed = await probe.wait_for(of("material_failed", material_id=upload.material_id))
    assert failed.reason == "processing failed: OSError"


async def test_storage_down_while_fetching_an_adapter_is_retried_not_failed(
    running: tuple[TextWorker, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, probe = running
    failing_first(monkeypatch, worker.storage, "get_bytes", times=1)
    request = ev.InferenceResponse(
        message_id=uuid.uuid4(),
        text="Привет",
        adapter_url=f"{prefix()}adapters/{uuid.uuid4()}.tar",
        adapter_version_id=uuid.uuid4(),
    )
    with pytest.raises(MaxRetryError):
        await worker.on_reply(request)
    await asyncio.sleep(0.1)
    assert not probe.all(of("response_failed", message_id=request.message_id))

    # A model that cannot load raises OSError too; that fails the reply, with the reason.
    def unloadable(*args: Any) -> str:
        raise OSError("Can't load tokenizer for 'missing-model'")

    monkeypatch.setattr(worker.engine, "generate", unloadable)
    request = ev.InferenceResponse(message_id=uuid.uuid4(), text="Привет")
    await worker.on_reply(request)
    failed = await probe.wait_for(of("response_failed", message_id=request.message_id))
    assert failed.reason.startswith("generation failed: OSError: Can't load tokenizer")


async def test_a_training_run_waits_out_a_storage_outage(
    running: tuple[TextWorker, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run outlives its train_start handler, so it retries storage itself."""
    worker, probe = running
    fake_training(monkeypatch, worker)
    start = await train_start(worker)
    fetches = failing_first(monkeypatch, worker.storage, "get_bytes", times=2)
    stores = failing_first(monkeypatch, worker.storage, "put_bytes", times=1)
    await worker.jobs.start(start)
    done = await probe.wait_for(of("train_finished", run_id=start.run_id), timeout=30)
    assert fetches == [2] and stores == [1]
    assert await worker.storage.exists(done.adapter_url)
    assert not probe.all(of("train_failed", run_id=start.run_id))
