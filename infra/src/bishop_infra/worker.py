"""What every worker process shares: its bus, health answers, a run loop, a temp folder."""

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bishop_contracts.events import HealthCheck, WorkerHealth, derive_event_id

from bishop_infra.bus import Bus, bus_from_url
from bishop_infra.settings import InfraSettings

log = logging.getLogger("bishop.worker")


def health_answer(worker: str, ping: HealthCheck, **details: str) -> WorkerHealth:
    """This worker's answer to the backend's ping."""
    return WorkerHealth(
        event_id=derive_event_id(ping.event_id, worker),
        worker=worker,
        in_reply_to=ping.event_id,
        details=details,
    )


async def serve_forever(bus: Bus, worker: str) -> None:
    await bus.start()
    log.info("%s is consuming", worker)
    beat = asyncio.create_task(_heartbeat_file(os.environ.get("BISHOP_HEARTBEAT_FILE")))
    try:
        await asyncio.Event().wait()
    finally:
        beat.cancel()
        await bus.stop()


async def _heartbeat_file(path: str | None) -> None:
    """Touch a file while consuming: a container health check reads its age."""
    if not path:
        return
    while True:
        await asyncio.to_thread(Path(path).touch)
        await asyncio.sleep(10)


def make_bus(settings: InfraSettings, worker: str) -> Bus:
    return bus_from_url(settings.bus_url, client_id=f"bishop-{worker}", **settings.delivery())


def run_process(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a worker as a process of its own: logs to stderr, and SIGTERM (`docker stop`) ends it
    as cleanly as Ctrl-C (running jobs stopped, its temp folder removed), not on the spot."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def until_terminated() -> None:
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await main()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(until_terminated())


class TempRoot:
    """One worker's own temp folder, `<base>/bishop-<worker>-<pid>-<start>-<random>`: material
    downloads, training work and synthesis scratch go in it. A worker that is killed cannot
    clean up, so the next one to start removes the roots whose process is gone (`sweep`).

    The process's start time is in the name because a pid alone is reused: in a container the
    worker is always pid 1, and a temp folder on a volume outlives the container."""

    def __init__(self, worker: str, base: Path | None = None) -> None:
        self.worker = worker
        self.base = Path(base) if base is not None else Path(tempfile.gettempdir())
        pid = os.getpid()
        suffix = uuid.uuid4().hex[:8]  # several workers of one kind can share a process (tests)
        self.path = self.base / f"bishop-{worker}-{pid}-{_started(pid) or 0}-{suffix}"
        self._pattern = re.compile(rf"bishop-{re.escape(worker)}-(\d+)-(\d+)-[0-9a-f]{{8}}")

    def folder(self, prefix: str) -> tempfile.TemporaryDirectory[str]:
        """A new folder in the root, removed when its `with` block ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=prefix, dir=self.path)

    def sweep(self) -> list[Path]:
        """Remove the roots that workers of this kind left when they died; returns them."""
        removed = []
        for folder in self.base.glob(f"bishop-{self.worker}-*"):
            found = self._pattern.fullmatch(folder.name)
            if found is None or folder == self.path or not folder.is_dir():
                continue
            pid, started = int(found[1]), found[2]
            if _is_gone(pid, started):
                shutil.rmtree(folder, ignore_errors=True)
                log.info("removed %s, left by a %s worker that is gone", folder, self.worker)
                removed.append(folder)
        return removed

    def use_for_process(self) -> None:
        """Make the root this process's default temp folder as well (`tempfile`, and TMPDIR for
        the programs it starts), so that libraries' own temp files are swept too. Only for a
        process that runs this worker alone, never the embedded all-in-one process."""
        self.path.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(self.path)
        os.environ["TMPDIR"] = str(self.path)

    def remove(self) -> None:
        """Remove the root (at a clean shutdown)."""
        shutil.rmtree(self.path, ignore_errors=True)


def _started(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (Linux); None if there is no such
    process or it is a zombie; "" where the system does not say."""
    if not sys.platform.startswith("linux"):
        return ""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which may itself hold spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _is_gone(pid: int, started: str) -> bool:
    now = _started(pid)
    if now is None:
        return True
    if now:
        return started != "0" and now != started  # the pid now belongs to another process
    if os.name != "posix":
        return False  # os.kill(pid, 0) would end the process on Windows: keep the folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists, as another user's process
    return False
