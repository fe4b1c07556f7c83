"""The four Bishop services as separate OS processes, as compose runs them, against real
Postgres, Redis, an S3 server and a Kafka-protocol broker: they meet only over the network and
the bus."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import PASSWORD, TEXT
from tests.sound import media
from tests.support import servers as srv
from tests.support.web import web_client
from tests.text.corpus import lecture

BIN = Path(sys.executable).parent


@pytest.fixture
def kafka() -> Iterator[str]:
    """A broker of its own: the services use their production consumer groups."""
    with srv.kafka() as bootstrap:
        yield bootstrap


@pytest.fixture
async def services(kafka: str, server_urls, tmp_path: Path) -> AsyncIterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    database_url, name = await srv.create_postgres_database()
    api_port, web_port = srv.free_port(), srv.free_port()
    env = {
        **os.environ,
        "BISHOP_ENVIRONMENT": "production",
        # Plain HTTP here: httpx, like a browser, keeps Secure cookies for HTTPS.
        "BISHOP_SECURE_COOKIES": "false",
        "BISHOP_SECRET_KEY": uuid.uuid4().hex * 2,
        "BISHOP_DATABASE_URL": database_url,
        "BISHOP_STORAGE_URL": server_urls.s3,
        "BISHOP_BUS_URL": f"kafka://{kafka}?fetch_max_wait_ms=10",
        "BISHOP_STATE_URL": srv.redis_url(),
        "BISHOP_DATA_DIR": str(tmp_path),
        "BISHOP_API_URL": f"http://127.0.0.1:{api_port}",
        "BISHOP_FRONTEND_PORT": str(web_port),
        "BISHOP_SESSION_SECRET": uuid.uuid4().hex * 2,
        "BISHOP_PROFILE": "demo",
        "BISHOP_TRAIN_MAX_STEPS": "6",
        "BISHOP_MAX_NEW_TOKENS": "12",
        "BISHOP_MIN_NEW_TOKENS": "6",
        "BISHOP_TEMPERATURE": "0",
        "BISHOP_TTS_BACKEND": "demo",
    }
    commands = {
        "backend": [str(BIN / "bishop"), "serve", "--host", "127.0.0.1", "--port", str(api_port)],
        "frontend": [str(BIN / "bishop-frontend")],
        "ml-text": [str(BIN / "bishop-ml-text")],
        "ml-sound": [str(BIN / "bishop-ml-sound")],
    }
    logs = {n: (tmp_path / f"{n}.log").open("wb") for n in commands}
    processes = {
        n: subprocess.Popen(c, env=env, cwd=tmp_path, stdout=logs[n], stderr=subprocess.STDOUT)
        for n, c in commands.items()
    }
    try:
        await _until_up(
            f"http://127.0.0.1:{api_port}/api/v1/utils/health-check", processes, tmp_path
        )
        await _until_up(f"http://127.0.0.1:{web_port}/login", processes, tmp_path)
        yield {
            "api": f"http://127.0.0.1:{api_port}/api/v1",
            "web": f"http://127.0.0.1:{web_port}",
            "logs": str(tmp_path),
        }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        await srv.drop_postgres_database(name)


async def _until_up(url: str, processes: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            for name, process in processes.items():
                assert process.poll() is None, (
                    f"{name} exited: {(logs / f'{name}.log').read_text()[-2000:]}"
                )
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError(url)


async def _poll(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], ok, timeout: float = 180
):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(path, headers=headers)
            if response.status_code == 200 and ok(response):
                return response
            await asyncio.sleep(0.5)


async def test_signup_to_dub_across_separate_processes(
    services: dict[str, str], tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=services["api"], timeout=60) as api:
        email = f"proc-{uuid.uuid4().hex[:8]}@example.com"
        assert (
            await api.post(
                "/users/signup", json={"email": email, "password": PASSWORD, "full_name": "Анна"}
            )
        ).status_code == 201
        token = (
            await api.post("/login/access-token", data={"username": email, "password": PASSWORD})
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        aid = (await api.post("/avatars", json={"name": "Анна"}, headers=headers)).json()["id"]
        voice = media.speech_wav(tmp_path / "voice.wav").read_bytes()
        await api.post(
            f"/avatars/{aid}/train/",
            data={"type": "basic"},
            files=[("file", ("lecture.txt", lecture(80).encode() + TEXT))],
            headers=headers,
        )
        await api.post(
            f"/avatars/{aid}/train/",
            data={"type": "voice_synthesis"},
            files=[("file", ("voice.wav", voice))],
            headers=headers,
        )
        await _poll(
            api,
            f"/avatars/{aid}/train/materials",
            headers,
            lambda r: [m["status"] for m in r.json()] == ["processed", "processed"],
        )

        assert (await api.post(f"/avatars/{aid}/train/start", headers=headers)).status_code == 202
        await _poll(api, f"/avatars/{aid}/versions", headers, lambda r: len(r.json()) == 1)
        chat = (await api.post(f"/avatars/{aid}/chat", json={"title": "t"}, headers=headers)).json()
        msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
        reply_id = (
            await api.post(msgs, json={"message": "Что такое импульс?"}, headers=headers)
        ).json()["response_id"]
        reply = await _poll(
            api, f"{msgs}/{reply_id}/response", headers, lambda r: r.json()["dub_status"] == "ready"
        )
        assert reply.json()["text"] and reply.json()["status"] == "ready"
        dub = await api.get(f"{msgs}/{reply_id}/response/dub", headers=headers)
        assert dub.headers["content-type"] == "audio/wav" and dub.content[:4] == b"RIFF"

    web = await web_client(services["web"])  # the browser app, over HTTP too
    try:
        login = await web.post("/login", data={"email": email, "password": PASSWORD})
        assert login.headers.get("hx-redirect") == "/avatars"
        assert "Анна" in (await web.get("/avatars")).text
    finally:
        await web.aclose()
