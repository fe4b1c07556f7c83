"""What a killed ml-text worker leaves: its training child dies with it, and its temp folder is
removed when a worker starts next."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from bishop_contracts import events as ev
from bishop_infra.storage import storage_from_url
from bishop_infra.worker import TempRoot
from bishop_text.ingest import Transcript
from bishop_text.ingest.clean import chunks
from bishop_text.settings import TextSettings
from bishop_text.worker import TextWorker

from tests.text.corpus import lecture

# The worker as its own process, on an in-process bus of its own: the train_start is published
# from inside once the worker answers a health check (then it consumes). Once training is under
# way it writes its temp root to a file: not to a pipe, which a child that outlived the worker
# would hold open, so that waiting for the worker would wait for the child.
WORKER_PROCESS = """
import asyncio, sys
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_text.settings import TextSettings
from bishop_text.worker import TextWorker

async def main():
    worker = TextWorker(TextSettings(_env_file=None))
    seen = set()
    async def watch(event):
        if getattr(event, "phase", None) is None:  # a step, not the phases before the first
            seen.add(event.event)
    worker.bus.subscribe("watch", [Topic.TRAIN_STATUS, Topic.WORKER_HEALTH], watch)
    serving = asyncio.create_task(worker.run(own_process=True))
    while "worker_health" not in seen:
        await worker.bus.publish(Topic.HEALTH_CHECK_TEXT, ev.HealthCheck())
        await asyncio.sleep(0.1)
    await worker.bus.publish(Topic.LLM_TRAIN, ev.parse_event(sys.argv[1].encode()))
    while "train_progress" not in seen:
        await asyncio.sleep(0.1)
    with open(sys.argv[2], "w") as ready:
        ready.write(str(worker.temp.path))
    await serving

asyncio.run(main())
"""


def _still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and /proc: Linux")
async def test_a_killed_worker_takes_its_training_along_and_its_temp_is_swept(
    tmp_path: Path,
) -> None:
    temp_dir = tmp_path / "tmp"
    storage_url = f"file://{tmp_path}/objects"
    prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"
    text = lecture(20)
    await storage_from_url(storage_url).put_bytes(
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
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "BISHOP_PROFILE": "demo",
        "BISHOP_BUS_URL": "memory://killed",
        "BISHOP_STATE_URL": "memory://killed",
        "BISHOP_STORAGE_URL": storage_url,
        "BISHOP_CACHE_DIR": str(tmp_path / "cache"),
        "BISHOP_TEMP_DIR": str(temp_dir),
        "BISHOP_TRAIN_MAX_STEPS": "100000",  # far longer than the test
        "BISHOP_BATCH_SIZE": "8",
        "BISHOP_PROGRESS_EVERY_SECONDS": "0",
    }
    ready, log_file = tmp_path / "ready", tmp_path / "worker.log"
    with log_file.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER_PROCESS, start.to_bytes().decode(), str(ready)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with asyncio.timeout(180):
            while not ready.exists() or not ready.read_text():
                assert worker.poll() is None, log_file.read_text()[-3000:]
                await asyncio.sleep(0.2)
        root = Path(ready.read_text())
        children = psutil.Process(worker.pid).children(recursive=True)
        training = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
        assert training, "the run should be in a child process"
        assert list(root.glob("bishop-train-*")), "the run works in the worker's temp root"
    finally:
        worker.kill()
        worker.wait()

    killed = time.monotonic()
    while _still_running(children) and time.monotonic() - killed < 5:
        await asyncio.sleep(0.1)
    assert not _still_running(children), "the training process outlived its worker"
    assert root.exists()  # a killed worker cannot clean up after itself

    settings = TextSettings(
        _env_file=None,
        bus_url=f"memory://next-{uuid.uuid4().hex[:6]}",
        state_url=f"memory://next-{uuid.uuid4().hex[:6]}",
        storage_url=storage_url,
        profile="demo",
        cache_dir=tmp_path / "cache",
        temp_dir=temp_dir,
    )
    successor = TextWorker(settings, group=f"next-{uuid.uuid4().hex[:6]}")
    serving = asyncio.create_task(successor.run())
    async with asyncio.timeout(10):
        while root.exists():
            await asyncio.sleep(0.05)
    with successor.temp.folder("bishop-material-"):
        assert successor.temp.path.exists()
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    assert list(temp_dir.iterdir()) == []  # a clean shutdown removes the worker's own root


def test_only_roots_of_workers_that_are_gone_are_swept(tmp_path: Path) -> None:
    mine = TempRoot("ml-text", tmp_path)
    sibling = TempRoot("ml-text", tmp_path)  # another worker in this same process
    for root in (mine, sibling):
        root.path.mkdir()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True
    )
    dead_pid = int(finished.stdout)
    dead = tmp_path / f"bishop-ml-text-{dead_pid}-0-0123abcd"
    # A live pid that started at another time: the pid was reused (pid 1 in a new container).
    reused = tmp_path / f"bishop-ml-text-{os.getpid()}-1-0123abcd"
    other_worker = tmp_path / f"bishop-ml-sound-{dead_pid}-0-0123abcd"
    unrelated = tmp_path / "bishop-material-x1y2"
    for folder in (dead, reused, other_worker, unrelated):
        (folder / "work").mkdir(parents=True)

    assert sorted(mine.sweep()) == sorted([dead, reused])
    assert mine.path.exists() and sibling.path.exists()
    assert other_worker.exists() and unrelated.exists()
    mine.remove()
    assert not mine.path.exists() and sibling.path.exists()
