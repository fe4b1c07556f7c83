"""Fixtures: the backend served over real HTTP on two stacks, embedded and real servers.

Every API test runs against both: `embedded` (SQLite, a local folder, the in-process bus and
state) and `servers` (Postgres, `rclone serve s3`, a Kafka-protocol broker, Redis).
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bishop_backend.main import create_app
from bishop_backend.settings import Settings
from bishop_infra.bus import bus_from_url

from tests.support import servers as srv
from tests.support.probe import BusProbe

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("COQUI_TOS_AGREED", "1")

TEST_UPLOAD_LIMIT = 2 * 1024 * 1024


@dataclass
class Stack:
    name: str
    settings: Settings
    url: str
    probe: BusProbe


@dataclass
class ServerUrls:
    kafka: str
    s3: str
    redis: str


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerUrls]:
    root = tmp_path_factory.mktemp("servers")
    with srv.kafka() as bootstrap, srv.s3(root) as s3_url:
        yield ServerUrls(kafka=bootstrap, s3=s3_url, redis=srv.redis_url())


def stack_settings(
    kind: str, data_dir: Path, urls: ServerUrls | None, database_url: str = ""
) -> Settings:
    run = uuid.uuid4().hex[:8]
    common = {
        "_env_file": None,
        "data_dir": data_dir,
        "secret_key": "test-secret-" + uuid.uuid4().hex + run,
        "max_upload_bytes": TEST_UPLOAD_LIMIT,
        "reply_stream_timeout": 30.0,
        "reply_stream_heartbeat": 1.0,
        # Every test signs up from the same address; the front-door tests set their own limits.
        "login_rate_limit": "100000/minute",
        "signup_rate_limit": "100000/minute",
    }
    if kind == "embedded":
        return Settings(bus_url=f"memory://{run}", state_url=f"memory://{run}", **common)
    assert urls is not None
    return Settings(
        database_url=database_url,
        storage_url=urls.s3,
        # The mock broker answers fetches only when this wait is over (see KafkaBus).
        bus_url=f"kafka://{urls.kafka}?fetch_max_wait_ms=10",
        state_url=urls.redis,
        consumer_group=f"backend-{run}",
        **common,
    )


@pytest.fixture(scope="session", params=["embedded", "servers"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp(request.param)
    db_name = None
    if request.param == "servers":
        urls = request.getfixturevalue("server_urls")
        database_url, db_name = await srv.create_postgres_database()
        settings = stack_settings("servers", data_dir, urls, database_url)
    else:
        settings = stack_settings("embedded", data_dir, None)
    async with serve(settings) as url:
        bus = bus_from_url(settings.bus_url, client_id="test-probe")
        probe = BusProbe(bus)
        await bus.start()
        try:
            yield Stack(request.param, settings, url, probe)
        finally:
            await bus.stop()
    if db_name:
        await srv.drop_postgres_database(db_name)


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """The backend on a real port, as uvicorn runs it in production."""
    async with srv.serve_app(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url + "/api/v1", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_xtts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.sound import tiny_xtts

    return tiny_xtts.build(tmp_path_factory.mktemp("xtts"))


@pytest.fixture(params=["demo", "xtts"])
def tts_settings(request: pytest.FixtureRequest) -> dict:
    """Settings of each offline synthesis backend the sound tests run with."""
    if request.param == "xtts":
        return {
            "tts_backend": "xtts",
            "xtts_model_dir": request.getfixturevalue("tiny_xtts_dir"),
            "tts_device": "cpu",
        }
    return {"tts_backend": "demo"}
