"""`bishop up` as a user runs it: a service that cannot start is reported loudly in the console
and by the health check, instead of "ok"."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port

BISHOP = Path(sys.executable).parent / "bishop"


async def test_a_worker_that_fails_to_start_is_named_by_the_console_and_the_health_check(
    tmp_path: Path,
) -> None:
    api, web = free_port(), free_port()
    env = {
        **os.environ,
        # The sound worker refuses this at start, as it would a voice it cannot load.
        "BISHOP_TTS_BACKEND": "no-such-voice",
        "BISHOP_PROFILE": "demo",
        "HF_HUB_OFFLINE": "1",
    }
    log = (tmp_path / "console.log").open("wb")
    process = subprocess.Popen(
        [
            str(BISHOP),
            "up",
            "--port",
            str(api),
            "--web-port",
            str(web),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        body: dict = {}
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert process.poll() is None, (tmp_path / "console.log").read_text()[-3000:]
                try:
                    answer = await client.get(f"http://127.0.0.1:{api}/api/v1/utils/health-check")
                except httpx.TransportError:
                    await asyncio.sleep(0.5)
                    continue
                body = answer.json()
                if body["workers"]["ml-text"]["status"] == "ok":
                    break
                await asyncio.sleep(0.5)
        assert answer.status_code == 503 and body["down"] == ["ml-sound"], body
        assert body["workers"]["ml-sound"]["status"] == "down"
        console = (tmp_path / "console.log").read_text()
        assert "ml-sound service STOPPED" in console and "no-such-voice" in console
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
