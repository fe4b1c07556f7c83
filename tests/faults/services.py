"""The four Bishop services as separate OS processes (as compose runs them), which a fault test
can start, SIGTERM, SIGKILL, freeze and restart one at a time.

Each start appends to the service's log, `<root>/logs/<name>.log`; a failed check shows its
tail. Every wait here is bounded.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

BIN = Path(sys.executable).parent
NAMES = ("backend", "frontend", "ml-text", "ml-sound")
HEALTH = "/api/v1/utils/health-check"


class Services:
    def __init__(self, env: dict[str, str], root: Path, api_port: int, web_port: int) -> None:
        self.env = env
        self.root = root
        self.api_port = api_port
        self.web_port = web_port
        (root / "logs").mkdir(parents=True, exist_ok=True)
        self.commands = {
            "backend": [
                str(BIN / "bishop"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
            ],
            "frontend": [str(BIN / "bishop-frontend")],
            "ml-text": [str(BIN / "bishop-ml-text")],
            "ml-sound": [str(BIN / "bishop-ml-sound")],
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._frozen: set[str] = set()
        # Where each service's log was when it last started.
        self._start_offsets: dict[str, int] = {}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def log(self, name: str, chars: int = 3000) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def logs(self, chars: int = 1500) -> str:
        return "\n".join(f"--- {n} ---\n{self.log(n, chars)}" for n in self.processes)

    def log_offsets(self) -> dict[str, int]:
        return {n: self.log_path(n).stat().st_size for n in NAMES if self.log_path(n).exists()}

    def logs_since(self, offsets: dict[str, int], chars: int = 4000) -> str:
        parts = []
        for name in NAMES:
            path = self.log_path(name)
            if path.exists():
                with path.open("rb") as f:
                    f.seek(offsets.get(name, 0))
                    text = f.read().decode(errors="replace")
                parts.append(f"--- {name} ---\n{text[-chars:]}")
        return "\n".join(parts)

    # lifecycle

    def start(self, *names: str) -> None:
        for name in names or NAMES:
            assert not self.alive(name), f"{name} is already running"
            with self.log_path(name).open("ab") as log:
                log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
                log.flush()
                self._start_offsets[name] = log.tell()
                self.processes[name] = subprocess.Popen(
                    self.commands[name],
                    env=self.env,
                    cwd=self.root,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def pid(self, name: str) -> int:
        process = self.processes[name]
        assert process.poll() is None, f"{name} is not running"
        return process.pid

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self._frozen.discard(name)

    def terminate(self, name: str, timeout: float = 20) -> float | None:
        """SIGTERM and wait; returns the seconds it took to exit, or None if it did not exit in
        `timeout` (it is then killed)."""
        process = self.processes[name]
        if process.poll() is not None:
            return 0.0
        self.thaw(name)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            return None
        return time.monotonic() - began

    def send_signal(self, name: str, sig: signal.Signals) -> None:
        """Signal `name` and return at once (see `wait_exited`)."""
        self.thaw(name)
        self.processes[name].send_signal(sig)

    def restart(self, name: str) -> None:
        if self.alive(name):
            self.terminate(name)
        self.start(name)

    def freeze(self, name: str) -> None:
        """SIGSTOP: the process keeps its connections but does nothing (a hung worker)."""
        os.kill(self.pid(name), signal.SIGSTOP)
        self._frozen.add(name)

    def thaw(self, name: str) -> None:
        if name in self._frozen and self.alive(name):
            os.kill(self.pid(name), signal.SIGCONT)
        self._frozen.discard(name)

    def descendants(self, name: str) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid(name)).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.thaw(name)
        for name in ("frontend", "backend", "ml-text", "ml-sound"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    # waits

    def _assert_running(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name in self.processes:
                process = self.processes[name]
                assert process.poll() is None, (
                    f"{name} exited ({process.returncode}):\n{self.log(name)}"
                )

    async def health(self) -> tuple[int, dict]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{self.api_port}{HEALTH}")
            return response.status_code, response.json()

    async def wait_healthy(self, timeout: float = 120, *, workers: bool = True) -> dict:
        """Until the health check says 200 (with `workers=False`: until every dependency is up,
        whatever the workers say)."""
        last: object = None
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=10) as client:
            while time.monotonic() < deadline:
                self._assert_running(tuple(n for n in self.processes if n not in self._frozen))
                try:
                    response = await client.get(f"http://127.0.0.1:{self.api_port}{HEALTH}")
                    body = response.json()
                    last = (response.status_code, body)
                    if response.status_code == 200:
                        return body
                    if not workers and not set(body.get("down", [])) - {"ml-text", "ml-sound"}:
                        return body
                except (httpx.TransportError, ValueError) as exc:
                    last = exc
                await asyncio.sleep(0.3)
        raise TimeoutError(f"not healthy in {timeout}s: {last!r}\n{self.logs()}")

    async def wait_consuming(self, *names: str, timeout: float = 120) -> None:
        """Until each worker's log, since its last start, says it consumes (the health check
        still shows the previous process as up for a while after it died)."""
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                self._assert_running((name,))
                with self.log_path(name).open("rb") as f:
                    f.seek(self._start_offsets.get(name, 0))
                    if f"{name} is consuming".encode() in f.read():
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not consume in {timeout}s\n{self.log(name)}")
                await asyncio.sleep(0.2)

    async def wait_frontend(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=10) as client:
            while time.monotonic() < deadline:
                self._assert_running(("frontend",))
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.web}/login")).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise TimeoutError(f"the browser app did not answer in {timeout}s\n{self.log('frontend')}")

    async def wait_exited(self, name: str, timeout: float) -> float | None:
        """Seconds until `name` exits, or None if it is still running after `timeout`."""
        process = self.processes[name]
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if process.poll() is not None:
                return time.monotonic() - began
            await asyncio.sleep(0.05)
        return None


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` that exist and are not zombies."""
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive
