"""ml-sound over the in-process bus: a redelivered event is skipped, not synthesised again; an
outage of storage is raised for the bus to retry, never turned into a failed dub."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_sound import worker as sound_worker
from bishop_sound.dubbing import Dubber
from bishop_sound.settings import SoundSettings
from urllib3.exceptions import MaxRetryError

from tests.sound import media
from tests.support.calls import counted, failing_first
from tests.support.probe import BusProbe

OUTPUTS = (Topic.SAVE_RESPONSE_DUB, Topic.MATERIAL_STATUS, Topic.WORKER_HEALTH)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Dubber, BusProbe]]:
    run = uuid.uuid4().hex[:8]
    settings = SoundSettings(
        _env_file=None,
        bus_url=f"memory://sound-redelivery-{run}",
        state_url=f"memory://sound-redelivery-{run}",
        storage_url=f"file://{tmp_path}/objects",
        temp_dir=tmp_path / "tmp",
        tts_backend="demo",
    )
    dubber = sound_worker.build(settings, group=f"ml-sound-{run}")
    probe = BusProbe(bus_from_url(settings.bus_url), topics=OUTPUTS)
    await probe.bus.start()
    await dubber.storage.ensure_ready()
    await dubber.bus.start()
    yield dubber, probe
    await dubber.bus.stop()
    await probe.bus.stop()


def of(kind: str, **ids: uuid.UUID) -> Any:
    return lambda e: e.event == kind and all(getattr(e, k, None) == v for k, v in ids.items())


def request(text: str = "Импульс сохраняется.") -> ev.SoundInference:
    message_id = uuid.uuid4()
    return ev.SoundInference(
        storage_url=f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/dubs/{message_id}.wav",
        base_voice_url=None,
        message_id=message_id,
        text=text,
        language="ru",
    )


async def test_a_redelivered_dub_is_not_synthesised_again(
    running: tuple[Dubber, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    dubber, probe = running
    dubs = counted(monkeypatch, dubber, "dub")
    spoken = counted(monkeypatch, dubber.synth, "synthesize")
    first = request()
    await probe.publish(Topic.SOUND_INFERENCE, first)
    await probe.publish(Topic.SOUND_INFERENCE, first)
    # One consumer per topic handles events in order: once the next dub is out, so is the
    # duplicate.
    after = request("Энергия тоже.")
    await probe.publish(Topic.SOUND_INFERENCE, after)
    await probe.wait_for(of("save_response_dub", message_id=after.message_id), timeout=60)
    assert len(dubs) == 2
    assert [args[0] for args in spoken] == ["Импульс сохраняется.", "Энергия тоже."]
    assert len(probe.all(of("save_response_dub", message_id=first.message_id))) == 1

    # Health checks are exempt: every ping gets its answer, even a repeated one.
    ping = ev.HealthCheck()
    await probe.publish(Topic.HEALTH_CHECK_SOUND, ping)
    await probe.publish(Topic.HEALTH_CHECK_SOUND, ping)
    async with asyncio.timeout(15):
        while len(probe.all(of("worker_health", in_reply_to=ping.event_id))) < 2:
            await asyncio.sleep(0.05)


async def test_a_redelivered_voice_sample_is_not_checked_again(
    running: tuple[Dubber, BusProbe], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dubber, probe = running
    checked = counted(monkeypatch, dubber, "check_sample")
    speech = media.speech_wav(tmp_path / "voice.wav").read_bytes()

    async def upload() -> ev.MaterialUploaded:
        key = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/audio/{uuid.uuid4()}.wav"
        await dubber.storage.put_bytes(key, speech, "audio/wav")
        return ev.MaterialUploaded(
            avatar_id=uuid.UUID(key.split("/")[3]),
            material_id=uuid.uuid4(),
            type="voice_synthesis",
            kind="audio",
            url=key,
            filename="voice.wav",
        )

    sample = await upload()
    await probe.publish(Topic.MATERIALS, sample)
    await probe.publish(Topic.MATERIALS, sample)
    after = await upload()
    await probe.publish(Topic.MATERIALS, after)
    await probe.wait_for(of("material_processed", material_id=after.material_id), timeout=60)
    assert len(checked) == 2
    assert len(probe.all(of("material_processed", material_id=sample.material_id))) == 1


async def test_storage_down_while_storing_a_dub_is_retried_not_failed(
    running: tuple[Dubber, BusProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    dubber, probe = running
    failing_first(monkeypatch, dubber.storage, "put_bytes", times=1)
    first = request()
    with pytest.raises(MaxRetryError):
        await dubber.dub(first)
    await asyncio.sleep(0.1)
    assert not probe.all(of("dub_failed", message_id=first.message_id))

    # Through the bus: retried while the outage lasts, then stored and announced.
    failures = failing_first(monkeypatch, dubber.storage, "put_bytes", times=2)
    second = request()
    await probe.publish(Topic.SOUND_INFERENCE, second)
    done = await probe.wait_for(of("save_response_dub", message_id=second.message_id), timeout=30)
    assert failures == [2]
    assert await dubber.storage.exists(done.dub_url)
    assert not probe.all(lambda e: e.event == "dub_failed")
