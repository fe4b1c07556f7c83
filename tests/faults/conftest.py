"""The fault suite's harness: servers it may stop, and the four services as OS processes.

- Postgres: a throwaway cluster of the suite's own (`initdb` + `pg_ctl`, a free port, a temp
  data folder), one per session.
- S3: `rclone serve s3` of the suite's own, one per session.
- Kafka protocol: librdkafka's mock broker (tests/support/kafka_mock.py). It lives in one
  process, so it is never killed.
- Redis: the machine's, under a per-run key prefix.

The four services (backend, browser app, ml-text, ml-sound; demo profile, tiny sizes) start
once for the suite (`fault_stack`); each scenario signs up a user of its own, breaks what it
tests, and checks that user's replies, dubs, materials and runs. `fault` hands the services
over healthy and brings back whatever a scenario left stopped, frozen or killed. The servers
and services are package-scoped: they go away when the last scenario is done.
"""

import contextlib
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bishop_contracts.topics import Topic
from bishop_infra.bus import Bus, bus_from_url

from tests.faults.api import Checker, Snapshot, User
from tests.faults.servers import PostgresCluster, S3Server, own_kafka
from tests.faults.services import Services
from tests.support import servers as srv

BASE_ENV = {
    "BISHOP_ENVIRONMENT": "production",
    "BISHOP_PROFILE": "demo",
    "BISHOP_MAX_NEW_TOKENS": "12",
    "BISHOP_MIN_NEW_TOKENS": "6",
    # Sampled, not greedy: a retried reply is a new draw, as for a user. (Greedy, the untrained
    # demo model gives the same unreadable bytes for the same question every time.)
    "BISHOP_TEMPERATURE": "1.0",
    "BISHOP_TTS_BACKEND": "demo",
    # Long enough that a run is still training when scenario 4 kills its worker (no other
    # scenario trains); a run silent this long is failed by the backend's sweeper. Longer than a
    # slow machine takes from start to the first progress report (40 s was not, once).
    "BISHOP_TRAIN_MAX_STEPS": "100000",
    "BISHOP_RUN_DEADLINE_SECONDS": "75",
    # Short beats, so health and the sweeper notice within seconds.
    "BISHOP_WORKER_HEARTBEAT_SECONDS": "2",
    "BISHOP_REPLY_STREAM_HEARTBEAT": "2",
    "BISHOP_SWEEP_INTERVAL_SECONDS": "2",
    "HF_HUB_OFFLINE": "1",
    "COQUI_TOS_AGREED": "1",
    # Two CPU cores for four services: one thread each for the math libraries.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def fault_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="package")
def fault_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("fault-s3"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def text_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ml-text's model cache (the demo base model, built at the first reply), shared by the
    scenarios so that only the first one pays for it."""
    return tmp_path_factory.mktemp("ml-text-cache")


@dataclass
class FaultStack:
    services: Services
    postgres: PostgresCluster
    s3: S3Server
    kafka: str
    database_url: str
    env: dict[str, str]
    timings: list[str] = field(default_factory=list)
    _bus: Bus | None = None
    _began: float = field(default_factory=time.monotonic)

    async def user(self) -> User:
        return await User(self.services.api).sign_up()

    def checker(self, user: User) -> Checker:
        return Checker(user, self.database_url)

    async def bus(self) -> Bus:
        """The tests' own bus client (a producer only), to publish as a worker would."""
        if self._bus is None:
            bus = bus_from_url(f"kafka://{self.kafka}?fetch_max_wait_ms=10", client_id="faults")
            await bus.start()
            self._bus = bus
        return self._bus

    async def fail_and_retry(self, user: User) -> str:
        """A reply failed by a poison event (a malformed `save_response` carrying its id) and
        retried; returns its id once it is `ready`. The text worker is frozen until the retry
        is asked for, so that its genuine answer cannot come first (a late answer turns a
        failed reply `ready` by itself)."""
        bus = await self.bus()
        self.services.freeze("ml-text")
        try:
            text = f"Ответ, который сломается {uuid.uuid4().hex[:6]}"
            reply_id = (await user.send(text))["response_id"]
            poison = {
                "event": "save_response",
                "event_id": str(uuid.uuid4()),
                "message_id": reply_id,
                "generated_text": None,
            }
            await bus.publish_raw(Topic.SAVE_RESPONSE, reply_id, json.dumps(poison).encode())
            reply = await user.wait_reply(reply_id, lambda m: m["status"] != "pending", within=30)
            assert reply["status"] == "failed" and reply["error"], reply
            retried = await user.retry(reply_id)
            assert retried["status"] == "pending", retried
        finally:
            self.services.thaw("ml-text")
        await user.until_ready(reply_id, time.monotonic() + 60)
        user.retried.append(reply_id)
        return reply_id

    async def settle(self, user: User, *, within: float = 60) -> Snapshot:
        """After recovery: everything of `user` final within `within` s and nothing duplicated;
        then every failed reply retried and `ready`. With none failed, one is failed on purpose
        and retried, so that each scenario shows a retry working after its fault."""
        checker = self.checker(user)
        snap = await checker.final(within=within)
        if await checker.retry_failed(snap, within=within):
            snap = await checker.final(within=within)
        else:
            await self.fail_and_retry(user)
            snap = await checker.final(within=within)
        self.mark(f"settled ({len(user.retried)} failed replies retried)")
        return snap

    def mark(self, label: str) -> None:
        """Note how long the scenario has run so far (printed at the end)."""
        self.timings.append(f"{label} at {time.monotonic() - self._began:.1f}s")


@pytest.fixture(scope="package")
async def fault_stack(
    fault_postgres: PostgresCluster,
    fault_s3: S3Server,
    text_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FaultStack]:
    """One set of the four services for the whole suite (starting them costs half a minute on
    two cores); each scenario uses a user of its own, and `fault` repairs what it broke."""
    root = tmp_path_factory.mktemp("fault-stack")
    with own_kafka() as kafka:
        database_url, name = await fault_postgres.create_database()
        api_port, web_port = srv.free_port(), srv.free_port()
        env = {
            **os.environ,
            **BASE_ENV,
            "BISHOP_SECRET_KEY": secrets.token_hex(32),
            "BISHOP_SESSION_SECRET": secrets.token_hex(32),
            "BISHOP_DATABASE_URL": database_url,
            "BISHOP_STORAGE_URL": fault_s3.url(f"bishop-faults-{uuid.uuid4().hex[:12]}"),
            "BISHOP_BUS_URL": f"kafka://{kafka}?fetch_max_wait_ms=10",
            "BISHOP_STATE_URL": srv.redis_url(),
            "BISHOP_DATA_DIR": str(root / "data"),
            "BISHOP_CACHE_DIR": str(text_cache),
            "BISHOP_TEMP_DIR": str(root / "tmp"),
            "BISHOP_API_URL": f"http://127.0.0.1:{api_port}",
            "BISHOP_FRONTEND_PORT": str(web_port),
        }
        (root / "tmp").mkdir()
        services = Services(env, root, api_port, web_port)
        stack = FaultStack(services, fault_postgres, fault_s3, kafka, database_url, env)
        try:
            services.start()
            await services.wait_consuming("ml-text", "ml-sound")
            await services.wait_healthy()
            await services.wait_frontend()
            stack.mark("services up")
            yield stack
        finally:
            services.stop_all()
            if stack._bus is not None:
                with contextlib.suppress(Exception):
                    await stack._bus.stop()
            if not fault_postgres.running():
                fault_postgres.start()
            await fault_postgres.drop_database(name)


@pytest.fixture
async def fault(
    request: pytest.FixtureRequest, fault_stack: FaultStack
) -> AsyncIterator[FaultStack]:
    """The shared services, healthy; afterwards whatever the scenario stopped, froze or killed
    is brought back, so the next scenario starts from a healthy stack."""
    await repair(fault_stack)
    before = fault_stack.timings  # the start of the services, before the first scenario
    fault_stack.timings = []
    fault_stack._began = time.monotonic()
    offsets = fault_stack.services.log_offsets()
    try:
        yield fault_stack
    finally:
        print(f"\n[{request.node.name}] " + "; ".join([*before, *fault_stack.timings]))
        fault_stack.timings = []
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(fault_stack.services.logs_since(offsets, 6000))
        await repair(fault_stack)


async def repair(stack: FaultStack) -> None:
    services = stack.services
    for name in list(services.processes):
        services.thaw(name)
    if not stack.postgres.running():
        stack.postgres.start()
    if not stack.s3.running():
        stack.s3.start()
    dead = [n for n in services.commands if not services.alive(n)]
    if dead:
        services.start(*dead)
    await services.wait_consuming(*(n for n in dead if n.startswith("ml-")))
    await services.wait_healthy()
    if "frontend" in dead:
        await services.wait_frontend()
