"""Training runs as jobs: progress, stop within seconds, never twice, and orphans reported."""

import json
import time
import uuid
from pathlib import Path

import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_infra.state import state_from_url
from bishop_infra.storage import storage_from_url
from bishop_text.ingest import Transcript
from bishop_text.ingest.clean import chunks
from bishop_text.jobs import HEARTBEATS, TrainingJobs
from bishop_text.settings import TextSettings

from tests.support.probe import BusProbe
from tests.text.corpus import lecture


@pytest.fixture
async def jobs(tmp_path: Path, tiny_base: Path):  # type: ignore[no-untyped-def]
    settings = TextSettings(
        _env_file=None,
        bus_url=f"memory://jobs-{uuid.uuid4().hex[:6]}",
        state_url=f"memory://st-{uuid.uuid4().hex[:6]}",
        storage_url=f"file://{tmp_path}/objects",
        profile="cpu",
        base_model=str(tiny_base),
        device="cpu",
        train_max_steps=4000,
        batch_size=4,
        progress_every_seconds=0.0,
    )
    storage = storage_from_url(settings.resolved_storage_url)
    bus = bus_from_url(settings.bus_url)
    probe = BusProbe(bus, topics=(Topic.TRAIN_STATUS,))
    await bus.start()
    manager = TrainingJobs(settings, storage, bus, state_from_url(settings.state_url))
    yield manager, probe
    await manager.shutdown()
    await bus.stop()


async def _start(manager: TrainingJobs) -> ev.TrainStart:
    prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"
    text = lecture(30)
    key = f"{prefix}transcripts/m.json"
    await manager.storage.put_bytes(
        key, Transcript(text=text, passages=chunks(text, 160)).to_json(), "application/json"
    )
    start = ev.TrainStart(
        avatar_id=uuid.UUID(prefix.split("/")[3]),
        run_id=uuid.uuid4(),
        train_materials=[
            ev.TrainMaterial(
                id=uuid.uuid4(), type="basic", url=f"{prefix}text/m.txt", transcript_url=key
            )
        ],
    )
    await manager.start(start)
    return start


async def test_stop_ends_a_running_job_within_seconds(jobs) -> None:  # type: ignore[no-untyped-def]
    manager, probe = jobs
    start = await _start(manager)
    first = await probe.wait_for(
        # The first step's report (the phases before it carry no steps).
        lambda e: e.event == "train_progress" and e.run_id == start.run_id and e.phase is None,
        timeout=90,
    )
    assert first.total_steps == 4000
    # The same run delivered again is not run twice; another run of the avatar is refused.
    await manager.start(start)
    other = start.model_copy(update={"run_id": uuid.uuid4(), "event_id": uuid.uuid4()})
    await manager.start(other)
    refused = await probe.wait_for(lambda e: e.event == "train_failed" and e.run_id == other.run_id)
    assert "in progress" in refused.reason
    assert len(manager.running) == 1

    asked = time.monotonic()
    await manager.stop(ev.TrainStop(avatar_id=start.avatar_id, run_id=start.run_id))
    stopped = await probe.wait_for(
        lambda e: e.event == "train_stopped" and e.run_id == start.run_id, timeout=30
    )
    assert stopped.avatar_id == start.avatar_id
    assert time.monotonic() - asked < 15
    assert not manager.running
    assert await manager.state.get_fields(HEARTBEATS) == {}
    assert not probe.all(lambda e: e.event == "train_finished")


async def test_a_run_whose_worker_died_is_reported_failed(jobs) -> None:  # type: ignore[no-untyped-def]
    manager, probe = jobs
    run_id, avatar_id = uuid.uuid4(), uuid.uuid4()
    record = json.dumps({"avatar_id": str(avatar_id), "run_id": str(run_id)})
    await manager.state.put_field(HEARTBEATS, str(run_id), f"{time.time() - 120}|{record}", ttl=60)
    await manager.sweep()
    failed = await probe.wait_for(lambda e: e.event == "train_failed" and e.run_id == run_id)
    assert "stopped during the run" in failed.reason
    await manager.sweep()  # reported once
    assert len(probe.all(lambda e: e.event == "train_failed" and e.run_id == run_id)) == 1


async def test_a_run_without_text_fails_with_a_reason(jobs) -> None:  # type: ignore[no-untyped-def]
    manager, probe = jobs
    start = ev.TrainStart(
        avatar_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        train_materials=[
            ev.TrainMaterial(
                id=uuid.uuid4(),
                type="voice_synthesis",
                url=f"users/u/avatars/{uuid.uuid4()}/audio/v.wav",
            ),
        ],
    )
    await manager.start(start)
    failed = await probe.wait_for(lambda e: e.event == "train_failed" and e.run_id == start.run_id)
    assert failed.reason == "no processed text materials were sent for training"
