"""Training offloaded to Kaggle. Kaggle is an outside service: its API client is replaced by a
stand-in that does what Kaggle does with the pushed kernel, running its script here."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_infra.state import state_from_url
from bishop_infra.storage import storage_from_url
from bishop_text.ingest import Transcript
from bishop_text.ingest.clean import chunks
from bishop_text.jobs import TrainingJobs
from bishop_text.settings import TextSettings

from tests.support.probe import BusProbe
from tests.text.corpus import lecture


class LocalKaggle:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.datasets: dict[str, Path] = {}
        self.kernels: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.pushed: list[dict] = []

    def dataset_create_new(
        self, folder: str, public: bool = False, quiet: bool = False, **_: object
    ) -> None:
        meta = json.loads((Path(folder) / "dataset-metadata.json").read_text())
        assert public is False and meta["licenses"]
        self.datasets[meta["id"]] = Path(folder)

    def kernels_push(self, folder: str, acc: str | None = None, **_: object) -> None:
        meta = json.loads((Path(folder) / "kernel-metadata.json").read_text())
        self.pushed.append({**meta, "accelerator": acc})
        working = self.root / meta["id"].replace("/", "_")
        working.mkdir(parents=True)
        env = {
            **os.environ,
            "BISHOP_KAGGLE_INPUT": str(self.datasets[meta["dataset_sources"][0]]),
            "BISHOP_KAGGLE_WORKING": str(working),
        }
        script = Path(folder) / meta["code_file"]
        log = (working / "log.txt").open("wb")
        self.kernels[meta["id"]] = (
            subprocess.Popen([sys.executable, str(script)], env=env, stdout=log, stderr=log),
            working,
        )

    def kernels_status(self, ref: str) -> SimpleNamespace:
        process, working = self.kernels[ref]
        code = process.poll()
        if code is None:
            return SimpleNamespace(status="KernelWorkerStatus.RUNNING", failure_message="")
        if code == 0:
            return SimpleNamespace(status="KernelWorkerStatus.COMPLETE", failure_message="")
        return SimpleNamespace(
            status="KernelWorkerStatus.ERROR",
            failure_message=(working / "log.txt").read_text()[-300:],
        )

    def kernels_output(self, ref: str, path: str, force: bool = False, quiet: bool = True) -> None:
        shutil.copytree(self.kernels[ref][1], path)

    def close(self) -> None:
        for process, _ in self.kernels.values():
            process.kill()


@pytest.fixture
async def kaggle_jobs(tmp_path: Path, tiny_base: Path):  # type: ignore[no-untyped-def]
    settings = TextSettings(
        _env_file=None,
        bus_url=f"memory://k-{uuid.uuid4().hex[:6]}",
        state_url=f"memory://ks-{uuid.uuid4().hex[:6]}",
        storage_url=f"file://{tmp_path}/objects",
        profile="cpu",
        base_model=str(tiny_base),
        device="cpu",
        train_max_steps=4,
        batch_size=4,
        kaggle=True,
        kaggle_username="anna",
        kaggle_poll_seconds=0.2,
    )
    kaggle = LocalKaggle(tmp_path / "kaggle")
    bus = bus_from_url(settings.bus_url)
    probe = BusProbe(bus, topics=(Topic.TRAIN_STATUS,))
    await bus.start()
    manager = TrainingJobs(
        settings,
        storage_from_url(settings.resolved_storage_url),
        bus,
        state_from_url(settings.state_url),
        kaggle_api=kaggle,
    )
    yield manager, probe, kaggle
    kaggle.close()
    await manager.shutdown()
    await bus.stop()


async def test_training_on_kaggle_brings_the_adapter_back(kaggle_jobs) -> None:  # type: ignore[no-untyped-def]
    manager, probe, kaggle = kaggle_jobs
    prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"
    text = lecture(30)
    await manager.storage.put_bytes(
        f"{prefix}transcripts/m.json",
        Transcript(text=text, passages=chunks(text, 160)).to_json(),
        "application/json",
    )
    start = ev.TrainStart(
        avatar_id=uuid.UUID(prefix.split("/")[3]),
        run_id=uuid.uuid4(),
        train_materials=[
            ev.TrainMaterial(
                id=uuid.uuid4(),
                type="basic",
                url=f"{prefix}text/m.txt",
                transcript_url=f"{prefix}transcripts/m.json",
            )
        ],
    )
    await manager.start(start)
    done = await probe.wait_for(
        lambda e: e.event in ("train_finished", "train_failed") and e.run_id == start.run_id,
        timeout=180,
    )
    assert done.event == "train_finished", getattr(done, "reason", "")
    assert probe.all(lambda e: e.event == "train_progress" and e.run_id == start.run_id)
    pushed = kaggle.pushed[0]
    assert (
        pushed["enable_gpu"] and pushed["is_private"] and pushed["accelerator"] == "NvidiaTeslaT4"
    )
    archive = await manager.storage.get_bytes(done.adapter_url)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert "adapter_config.json" in names and "bishop.json" in names
    assert done.config["kind"] == "lora"
