"""`bishop up` on a machine with only Python and uv: no espeak-ng, no ffmpeg, no ffprobe on the
PATH. Uploaded audio and video are transcribed and replies are voiced all the same (the demo
voice speaks from its wheel, audio decodes with the ffmpeg that imageio-ffmpeg ships)."""

import asyncio
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import httpx

from tests import factories
from tests.backend.helpers import until
from tests.sound import media
from tests.sound.bare import SYSTEM_PROGRAMS
from tests.support.servers import free_port

VENV_BIN = Path(sys.executable).parent
BISHOP = VENV_BIN / "bishop"
DEADLINE = 110  # seconds for the whole test, start-up included


def bare_path(folder: Path) -> str:
    """A PATH as `uv run` makes it on a machine with only Python and uv: the virtual
    environment's programs and a folder holding uv alone; no system folder at all."""
    folder.mkdir()
    uv = shutil.which("uv")
    if uv is not None:
        (folder / "uv").symlink_to(uv)
    path = os.pathsep.join([str(VENV_BIN), str(folder)])
    visible = {name: shutil.which(name, path=path) for name in SYSTEM_PROGRAMS}
    assert not any(visible.values()), f"the PATH still reaches {visible}"
    return path


async def test_bishop_up_transcribes_and_voices_without_system_programs(tmp_path: Path) -> None:
    began = time.monotonic()
    made = tmp_path / "media"
    made.mkdir()
    speech = media.speech_wav(made / "speech.wav")
    talk = media.video(made / "talk.mp4", speech)

    api, web = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "IMAGEIO_FFMPEG_EXE"}
    env.update(
        PATH=bare_path(tmp_path / "bin"),
        BISHOP_PROFILE="demo",
        BISHOP_TTS_BACKEND="demo",
        BISHOP_MAX_NEW_TOKENS="12",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    data = tmp_path / "data"
    console = tmp_path / "console.log"
    with console.open("wb") as log:
        process = subprocess.Popen(
            [
                str(BISHOP),
                "up",
                "--port",
                str(api),
                "--web-port",
                str(web),
                "--data-dir",
                str(data),
            ],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with (
            asyncio.timeout(DEADLINE - (time.monotonic() - began)),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{api}/api/v1", timeout=30) as client,
        ):
            await _healthy(client, process, console)
            await _transcribe_and_voice(client, [speech, talk])
    except BaseException:
        print(console.read_text(errors="replace")[-6000:])
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _healthy(client: httpx.AsyncClient, process: subprocess.Popen, console: Path) -> None:
    while True:
        assert process.poll() is None, console.read_text(errors="replace")[-3000:]
        try:
            answer = await client.get("/utils/health-check")
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if answer.status_code == 200:
            return
        await asyncio.sleep(0.5)


async def _transcribe_and_voice(client: httpx.AsyncClient, recordings: list[Path]) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers, name="Анна", description="Учитель физики"))["id"]
    uploaded = await factories.upload(
        client, headers, aid, [(path.name, path.read_bytes()) for path in recordings]
    )
    assert uploaded.status_code == 201, uploaded.text
    assert sorted(m["kind"] for m in uploaded.json()) == ["audio", "video"], uploaded.json()
    materials = await until(
        client,
        f"/avatars/{aid}/train/materials",
        headers,
        lambda ms: all(m["status"] in ("processed", "failed") for m in ms),
        timeout=60,
    )
    for material in materials:
        assert material["status"] == "processed" and material["has_transcript"], material
        transcript = await client.get(
            f"/avatars/{aid}/train/materials/{material['id']}/transcript", headers=headers
        )
        assert transcript.status_code == 200, transcript.text
        # Random weights hear what they hear; that something was heard is what counts.
        assert transcript.json()["text"].strip(), material

    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    sent = await client.post(msgs, json={"message": "Привет! Расскажи о себе."}, headers=headers)
    assert sent.status_code == 201, sent.text
    reply_id = sent.json()["response_id"]
    for _ in range(3):
        reply = await until(
            client, f"{msgs}/{reply_id}/response", headers, lambda r: True, ok_404=True, timeout=60
        )
        # 12 sampled tokens of an untrained model are, rarely, all unreadable: the reply fails
        # with that reason, and a retry is a new draw (as for a user).
        if reply["status"] != "failed" or "no readable text" not in (reply["error"] or ""):
            break
        retried = await client.post(f"{msgs}/{reply_id}/response/retry", headers=headers)
        assert retried.status_code == 200, retried.text
    assert reply["status"] == "ready" and reply["text"].strip(), reply
    reply = await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["dub_status"] in ("ready", "failed"),
        timeout=60,
    )
    assert reply["dub_status"] == "ready", reply
    dub = await client.get(f"{msgs}/{reply_id}/response/dub", headers=headers)
    assert dub.status_code == 200, dub.text
    assert dub.headers["content-type"].startswith("audio/wav")
    with wave.open(io.BytesIO(dub.content)) as audio:
        assert audio.getnframes() > 0 and audio.getframerate() > 0
