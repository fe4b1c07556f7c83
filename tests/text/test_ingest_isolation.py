"""Ingest that cannot slow another user down: materials are processed in a child process of the
worker, at a lower priority than replies and within a time budget; a material that runs over it
or crashes the child fails alone, with a reason, and the next material gets a new child."""

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_text.settings import TextSettings
from bishop_text.worker import TextWorker

from tests.support.probe import BusProbe
from tests.text import hostile
from tests.text.corpus import lecture

MiB = 1 << 20
TEXT_BYTES = 5 * 10**6


class Ingest:
    """A worker as its consumers see it, and a seat on the bus for what it says of materials."""

    def __init__(self, worker: TextWorker, probe: BusProbe) -> None:
        self.worker = worker
        self.probe = probe
        self.prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"

    async def upload(self, path: Path, kind: str) -> ev.MaterialUploaded:
        return await hostile.upload(self.worker.storage, self.prefix, path, kind)

    async def process(self, path: Path, kind: str) -> ev.Event:
        """The material's outcome, `material_processed` or `material_failed`."""
        upload = await self.upload(path, kind)
        await self.worker.on_material(upload)
        return await self.probe.wait_for(
            lambda e: (
                e.event in ("material_processed", "material_failed")
                and e.material_id == upload.material_id
            )
        )

    async def reply_seconds(self) -> float:
        request = ev.InferenceResponse(
            message_id=uuid.uuid4(), text="Что такое импульс?", persona=ev.Persona(name="Борис")
        )
        start = time.perf_counter()
        await self.worker.reply(request)
        return time.perf_counter() - start


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[Ingest]:
    run = uuid.uuid4().hex[:8]
    settings = TextSettings(
        _env_file=None,
        bus_url=f"memory://isolation-{run}",
        state_url=f"memory://isolation-{run}",
        storage_url=f"file://{tmp_path}/objects",
        temp_dir=tmp_path / "tmp",
        profile="demo",
        cache_dir=tmp_path / "cache",
        max_new_tokens=16,
        min_new_tokens=16,
        temperature=0.0,
    )
    worker = TextWorker(settings, group=f"ml-text-{run}")
    probe = BusProbe(bus_from_url(settings.bus_url), topics=(Topic.MATERIAL_STATUS,))
    await probe.bus.start()
    await worker.storage.ensure_ready()
    yield Ingest(worker, probe)
    await worker.ingest.close()
    await probe.bus.stop()


@pytest.fixture(scope="module")
def hostile_texts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """5 MB one-line texts of the shapes cleaning was once quadratic on."""
    root = tmp_path_factory.mktemp("hostile")
    shapes = ("every shape at once", "emphasis never closed", "combining marks")
    return {s: hostile.run_on_text(root / f"{i}.txt", s, TEXT_BYTES) for i, s in enumerate(shapes)}


@pytest.fixture
def small_text(tmp_path: Path) -> Path:
    path = tmp_path / "lecture.txt"
    path.write_text(lecture(4))
    return path


def processed(event: ev.Event) -> bool:
    return isinstance(event, ev.MaterialProcessed)


def failed_with(reason: str) -> Callable[[ev.Event], bool]:
    return lambda e: isinstance(e, ev.MaterialFailed) and e.reason == reason


async def test_replies_keep_their_pace_while_hostile_materials_are_processed(
    ingest: Ingest, hostile_texts: dict[str, Path], small_text: Path, tmp_path: Path
) -> None:
    """The replies run on the worker's event loop, as its consumers do, while the materials go
    through `on_material` one after another (two bombs, then the texts). In the worker's own
    thread pool (before), the texts made a reply 6 to 11 times slower on the 2-core development
    machine; in the ingest child, 1.2 times (bench/ingest_isolation.py).

    Idle and busy replies are measured in pairs, a moment apart, so that the load of the
    machine's other users, which drifts, weighs on both alike: for the idle one of a pair the
    ingest child is paused (SIGSTOP) with its material in flight, which for the worker is the
    same as no material at all: it only waits for the child's answer."""
    for _ in range(2):
        await ingest.reply_seconds()  # the demo model loaded, warm
    assert processed(await ingest.process(small_text, "text"))  # the child started
    child = psutil.Process(ingest.worker.ingest.pid)
    assert child.pid != os.getpid() and child.ppid() == os.getpid()
    assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE  # the cores are the replies' first

    materials = [
        (hostile.telegram_zip_bomb(tmp_path / "export.zip", mib=20), "archive"),
        (hostile.docx(tmp_path / "bomb.docx", 100_000), "document"),
        *((path, "text") for path in hostile_texts.values()),
    ]
    outcomes: list[ev.Event] = []

    async def upload_all() -> None:
        for path, kind in materials:
            outcomes.append(await ingest.process(path, kind))

    uploading = asyncio.create_task(upload_all())
    async with asyncio.timeout(120):  # the child gets only idle CPU: slow on a busy machine
        while len(outcomes) < 2:  # the bombs refused; the texts next
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    ratios: list[float] = []  # busy over idle, pair by pair
    try:
        for _ in range(12):
            child.suspend()
            try:
                paused = await ingest.reply_seconds()
            finally:
                child.resume()
            seconds = await ingest.reply_seconds()
            if uploading.done():
                break  # only replies wholly within the materials' processing count
            ratios.append(seconds / paused)
            if len(ratios) >= 6 and statistics.median(ratios) < 2.0:
                break  # else 6 more: a neighbour on the machine may have stolen a slice
    finally:
        uploading.cancel()  # the text in the child is killed with it: the bus would redeliver
        await asyncio.gather(uploading, return_exceptions=True)

    assert all("(a zip bomb?)" in getattr(o, "reason", "") for o in outcomes[:2]), outcomes
    assert len(ratios) >= 4, f"only {len(ratios)} pairs while the texts were processed"
    # The target is 1.5; the bound leaves room for the machine's other users.
    assert statistics.median(ratios) < 2.0, f"busy/idle reply latency, pair by pair: {ratios}"


async def test_a_material_over_the_time_budget_fails_naming_it_and_the_next_one_works(
    ingest: Ingest, hostile_texts: dict[str, Path], small_text: Path
) -> None:
    assert processed(await ingest.process(small_text, "text"))
    first_child = ingest.worker.ingest.pid
    ingest.worker.ingest.seconds_per_material = 0.25  # the 5 MB text takes a second or more
    start = time.perf_counter()
    outcome = await ingest.process(hostile_texts["emphasis never closed"], "text")
    assert failed_with("processing took longer than the limit of 0.25 seconds per material")(
        outcome
    ), outcome
    assert time.perf_counter() - start < 10.0  # the upload's 5 MB, the budget, the kill
    assert not psutil.pid_exists(first_child)  # killed, and reaped

    ingest.worker.ingest.seconds_per_material = 60.0
    outcome = await ingest.process(small_text, "text")
    assert processed(outcome), outcome
    assert ingest.worker.ingest.pid != first_child
    assert await ingest.worker.storage.exists(outcome.transcript_url)  # type: ignore[attr-defined]


def test_the_budget_and_priority_are_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BISHOP_INGEST_SECONDS_PER_MATERIAL", "90")
    monkeypatch.setenv("BISHOP_INGEST_CPU_PRIORITY", "low")
    run = uuid.uuid4().hex[:8]
    settings = TextSettings(
        _env_file=None,
        bus_url=f"memory://budget-{run}",
        state_url=f"memory://budget-{run}",
        storage_url=f"file://{tmp_path}/objects",
    )
    ingest = TextWorker(settings).ingest
    assert (ingest.seconds_per_material, ingest.cpu_priority) == (90.0, "low")


async def test_a_crashed_ingest_process_fails_its_material_alone(
    ingest: Ingest, small_text: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = (
        "processing stopped: its process was killed (SIGKILL), "
        "most likely for running out of memory"
    )
    oom = hostile.extract_killed_like_by_the_oom_killer
    monkeypatch.setattr(ingest.worker.ingest, "extract", oom)
    outcome = await ingest.process(small_text, "text")
    assert failed_with(killed)(outcome), outcome
    monkeypatch.undo()
    assert processed(await ingest.process(small_text, "text"))

    # Killed between materials, from outside: the next material gets a new one. (One that
    # dies at the very moment a material is sent to it fails that material.)
    os.kill(ingest.worker.ingest.pid, signal.SIGKILL)  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    assert processed(await ingest.process(small_text, "text"))


async def test_the_child_keeps_its_speech_model_from_one_material_to_the_next(
    ingest: Ingest, small_text: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whisper loads on a Transcriber's first recording and stays with it: one Transcriber
    for the child's whole life means one load."""
    monkeypatch.setattr(ingest.worker.ingest, "extract", hostile.extract_naming_its_transcriber)
    first, second = [await ingest.process(small_text, "text") for _ in range(2)]
    assert first.stats == second.stats, (first, second)  # type: ignore[attr-defined]
    assert first.stats["pid"] == ingest.worker.ingest.pid != os.getpid()  # type: ignore[attr-defined]


async def test_a_huge_result_json_is_refused_without_being_read(
    ingest: Ingest, tmp_path: Path
) -> None:
    """620 KB of zip, 608 MiB of whitespace: refused by the central directory, whatever the
    compression limit; the child never holds more than a few MiB of it."""
    export = await asyncio.to_thread(hostile.whitespace_export, tmp_path / "export.zip")
    assert export.stat().st_size < 700_000
    outcome = await ingest.process(export, "archive")
    assert "result.json in the archive is compressed 1,0" in getattr(outcome, "reason", "")

    ingest.worker.settings.ingest_max_compression_ratio = 10_000
    outcome = await ingest.process(export, "archive")
    assert failed_with("result.json in the archive unpacks to 608 MiB; the limit is 200 MiB")(
        outcome
    ), outcome
    assert _peak_mib(ingest.worker.ingest.pid) < 200  # the child's, since it started: ~55 MiB


def _peak_mib(pid: Any) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


# The worker runs as a console script whose first line imports all of it (torch included): the
# ingest child must not run that again, as a spawned child runs its parent's main module.
MAIN_SCRIPT = """
import sys
with open(sys.argv[1], "a") as runs:
    runs.write(__name__ + "\\n")
import asyncio
from pathlib import Path
from bishop_text.ingest.isolated import IngestProcess, Material, Whisper
from bishop_text.ingest.limits import Limits
from bishop_text.settings import TextSettings

async def main():
    folder = Path(sys.argv[2])
    (folder / "a.txt").write_text("Привет, мир.")
    process = IngestProcess(Whisper("never-loaded", "cpu"), 60)
    limits = Limits.from_settings(TextSettings(_env_file=None))
    material = Material(folder / "a.txt", "text", "txt", "", None, limits, folder / "t.json")
    print(await process.transcript(material))
    await process.close()

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_ingest_child_does_not_run_the_main_module_again(tmp_path: Path) -> None:
    script = tmp_path / "worker_script.py"
    script.write_text(MAIN_SCRIPT)
    runs = tmp_path / "runs.txt"
    done = subprocess.run(
        [sys.executable, str(script), str(runs), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "'characters': 12" in done.stdout
    assert runs.read_text().split() == ["__main__"]  # not "__mp_main__" as well
