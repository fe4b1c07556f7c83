"""Many users at once: errors, lost replies, send and time-to-text percentiles, memory.

Every user signs up, logs in, creates an avatar and a chat, then sends `--messages` messages
one after another, each time waiting for the reply's `text` event on its SSE stream. All users
begin at once, and each starts talking as soon as it is set up (sign-ups queue on the password
hashing, so users arrive over seconds, as a crowd does); `--together` holds every user back until
all are set up, so that all first messages come in the same instant (the worst case).

The backend runs in a process of its own (embedded: with the responder in it, as
`bishop up` runs; servers: the responder is a third process, as compose runs it), so the
users' client takes none of its CPU and the memory figures are the backend's own.

Responders: `instant` answers every `inference_response` at once with its own text (the cost
of Bishop alone); `demo` is the real ml-text worker with the demo profile's untrained tiny
model (offline). `--think` paces the users (a pause before each message); `--trace` and
`--profile` show where the backend's time goes. See docs/performance.md.

    uv run python -m bench.load --users 100 --messages 10 --stack embedded --responder instant
    uv run python -m bench.load --users 100 --messages 10 --stack both --think 10
    uv run python -m bench.load --users 30 --messages 3 --stack servers --responder demo
"""

import argparse
import asyncio
import cProfile
import gc
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-bench-1"
# Per-client (per-address) limits on signup and login: every simulated user comes from
# 127.0.0.1, so the bench raises them and says so. The per-account lockout after failed
# logins stays as configured: the bench never fails a login.
RAISED_RATE = "1000000/minute"
KEPT_LIMITS = {"login_failures_limit"}
_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*\d*\s*[a-z]+\s*$", re.IGNORECASE)
READY = "bench-load-ready"
# Events that end a reply stream before its text (see bishop_backend.services.replies).
ENDINGS = {"error", "timeout", "reconnect", "dub", "dub_error"}
# Sign-ups and sign-ins hash a password (Argon2, tens of ms of CPU, on purpose) on few threads:
# a hundred at once queue behind each other for many seconds, which the bench reports but does
# not count as errors; any other request gets REQUEST_TIMEOUT.
SETUP_TIMEOUT = 300.0
REQUEST_TIMEOUT = 60.0


# ---- the load: users and what they measure ---------------------------------------------


@dataclass
class Options:
    users: int = 100
    messages: int = 10
    # Seconds a reply's text may take before it counts as lost.
    reply_timeout: float = 60.0
    # Seconds a user waits after a reply before the next message (0: at once).
    think: float = 0.0
    # Every user's first message in the same instant, once all users are set up.
    together: bool = False
    backend: dict[str, str] = field(default_factory=dict)  # settings changed for the run
    text: dict[str, str] = field(default_factory=dict)  # ml-text settings (demo responder)
    trace: bool = False
    profile: str | None = None


@dataclass
class Tally:
    errors: Counter[str] = field(default_factory=Counter)
    # The first answer of each kind of error, to tell what it was.
    examples: dict[str, str] = field(default_factory=dict)
    lost: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # Each send: seconds since the messages began, and how long it took (in the JSON only).
    sends: list[tuple[float, float]] = field(default_factory=list)
    began: float = 0.0
    requests: int = 0
    sent: int = 0
    replies: int = 0


@dataclass
class Chat:
    headers: dict[str, str]
    msgs: str


class Users:
    def __init__(
        self, client: httpx.AsyncClient, tally: Tally, reply_timeout: float, think: float = 0.0
    ) -> None:
        self.client = client
        self.tally = tally
        self.reply_timeout = reply_timeout
        self.think = think
        self.run = uuid.uuid4().hex[:8]

    async def request(self, op: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        """One request, timed; a failure is counted under `op` and gives None."""
        self.tally.requests += 1
        start = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.error(f"{op}: {type(exc).__name__}", repr(exc))
            return None
        self.tally.seconds[op].append(time.perf_counter() - start)
        if response.status_code >= 400:
            self.error(f"{op}: HTTP {response.status_code}", response.text)
            return None
        return response

    def error(self, kind: str, example: str) -> None:
        self.tally.errors[kind] += 1
        self.tally.examples.setdefault(kind, example[:300])

    async def setup(self, n: int) -> Chat | None:
        email = f"load-{self.run}-{n}@example.com"
        body = {"email": email, "password": PASSWORD, "full_name": f"Load User {n}"}
        # Password hashing is slow on purpose and queues (see SETUP_TIMEOUT).
        slow = {"timeout": SETUP_TIMEOUT}
        if await self.request("signup", "POST", "/users/signup", json=body, **slow) is None:
            return None
        form = {"username": email, "password": PASSWORD}
        token = await self.request("login", "POST", "/login/access-token", data=form, **slow)
        if token is None:
            return None
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        avatar = await self.request(
            "create avatar", "POST", "/avatars", json={"name": f"Avatar {n}"}, headers=headers
        )
        if avatar is None:
            return None
        aid = avatar.json()["id"]
        chat = await self.request(
            "create chat", "POST", f"/avatars/{aid}/chat", json={"title": "load"}, headers=headers
        )
        if chat is None:
            return None
        return Chat(headers, f"/avatars/{aid}/chat/{chat.json()['id']}/msgs")

    async def talk(self, chat: Chat, n: int, messages: int) -> None:
        pace = random.Random(n)
        for m in range(messages):
            if self.think:
                # Paced users start at random moments too, not all in the same instant.
                await asyncio.sleep(self.think * (pace.uniform(0.5, 1.5) if m else pace.random()))
            start = time.perf_counter()
            sent = await self.request(
                "send",
                "POST",
                chat.msgs,
                json={"message": f"Привет, это сообщение {m} от пользователя {n}. Как дела?"},
                headers=chat.headers,
            )
            if sent is None:
                continue
            self.tally.sent += 1
            took = time.perf_counter() - start
            self.tally.sends.append((round(start - self.tally.began, 3), round(took * 1000, 1)))
            # Without pauses every user's first message comes in the same instant.
            self.tally.seconds["send, first message" if m == 0 else "send, later ones"].append(took)
            outcome = await self.wait_for_text(chat, sent.json()["response_id"])
            if outcome == "text":
                self.tally.replies += 1
                self.tally.seconds["time to text"].append(time.perf_counter() - start)
            else:
                self.tally.lost[outcome] += 1

    async def wait_for_text(self, chat: Chat, reply_id: str) -> str:
        """`text`, or why the reply's text did not come: the event that ended the stream
        instead, a failed request, or the bench's own timeout."""
        url = f"{chat.msgs}/{reply_id}/response/stream"
        self.tally.requests += 1
        kind = ""
        try:
            async with (
                asyncio.timeout(self.reply_timeout),
                self.client.stream("GET", url, headers=chat.headers) as stream,
            ):
                if stream.status_code != 200:
                    body = (await stream.aread()).decode(errors="replace")
                    self.error(f"stream: HTTP {stream.status_code}", body)
                    return f"stream HTTP {stream.status_code}"
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                        if kind == "text":
                            return "text"
                    elif line.startswith("data:") and kind in ENDINGS:
                        self.error(f"stream: `{kind}` event", line[5:].strip())
                        return f"stream ended with `{kind}`"
                return "stream closed before `text`"
        except TimeoutError:
            return f"no `text` in {self.reply_timeout:g} s"
        except httpx.HTTPError as exc:
            self.error(f"stream: {type(exc).__name__}", repr(exc))
            return f"stream {type(exc).__name__}"


async def load(url: str, options: Options, phase: Callable[[str], None]) -> dict[str, Any]:
    """Run the users against `url`; returns the measures (seconds, counts). `phase` is called
    as each phase begins: `setup`, `messages`, `done`."""
    users, messages = options.users, options.messages
    limits = httpx.Limits(
        max_connections=2 * users + 10,
        max_keepalive_connections=2 * users + 10,
        # Under uvicorn's 5 s: a connection the server is closing just then is never reused
        # (httpx does not retry a request that met such a close).
        keepalive_expiry=2.0,
    )
    async with httpx.AsyncClient(
        base_url=url + "/api/v1", limits=limits, timeout=httpx.Timeout(REQUEST_TIMEOUT)
    ) as client:
        # Warm-up, not counted: first queries, the demo model built and loaded.
        warm = Users(client, Tally(), options.reply_timeout)
        if (chat := await warm.setup(0)) is None:
            raise RuntimeError(f"the warm-up user could not be set up: {warm.tally.examples}")
        await warm.talk(chat, 0, 2)
        if warm.tally.replies != 2:
            raise RuntimeError(f"warm-up replies did not come: {dict(warm.tally.lost)}")

        tally = Tally()
        crowd = Users(client, tally, options.reply_timeout, options.think)
        phase("setup")
        start = time.perf_counter()
        if options.together:
            chats = await asyncio.gather(*(crowd.setup(n) for n in range(1, users + 1)))
            setup_s = time.perf_counter() - start
            phase("messages")
            start = tally.began = time.perf_counter()
            await asyncio.gather(
                *(crowd.talk(chat, n, messages) for n, chat in enumerate(chats, 1) if chat)
            )
        else:
            tally.began = start
            ready: list[float] = []

            async def arrive(n: int) -> None:
                chat = await crowd.setup(n)
                ready.append(time.perf_counter())
                if len(ready) == users:
                    phase("messages")  # from here on, every user is talking
                if chat is not None:
                    await crowd.talk(chat, n, messages)

            await asyncio.gather(*(arrive(n) for n in range(1, users + 1)))
            setup_s = max(ready) - start
            # Messages began with the first user set up.
            start = min(ready)
        chat_s = time.perf_counter() - start
        phase("done")
    return {
        "users": users,
        "messages": messages,
        "think_s": options.think,
        "together": options.together,
        "requests": tally.requests,
        "errors": dict(tally.errors),
        "error_examples": tally.examples,
        # Messages a failed send or a user who could not be set up never sent.
        "not_sent": users * messages - tally.sent,
        "sent": tally.sent,
        "replies": tally.replies,
        "lost": tally.sent - tally.replies,
        "lost_by_reason": dict(tally.lost),
        "setup_s": setup_s,
        "chat_s": chat_s,
        "replies_per_s": tally.replies / chat_s if chat_s else 0.0,
        "ms": {op: percentiles(samples) for op, samples in tally.seconds.items()},
        "sends": sorted(tally.sends),
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in ms (nearest rank)."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000

    if not ordered:
        return {}
    return {"n": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": rank(100)}


# ---- the stack: settings, the backend and responder processes ---------------------------


def bench_settings(
    stack: str, data_dir: Path, urls: Any, database_url: str, options: Options
) -> tuple[dict[str, Any], dict[str, str]]:
    """The backend's settings as JSON (the tests' stack, with the product's stream timings),
    and what the bench changed."""
    from bishop_backend.settings import Settings

    from tests.conftest import stack_settings

    settings = stack_settings(stack, data_dir, urls, database_url)
    data = settings.model_dump(mode="json")
    product = Settings.model_fields
    data["reply_stream_heartbeat"] = product["reply_stream_heartbeat"].default
    data["reply_stream_timeout"] = product["reply_stream_timeout"].default
    changed: dict[str, str] = {}
    if options.reply_timeout + 30 > data["reply_stream_timeout"]:
        changed["reply_stream_timeout"] = str(options.reply_timeout + 30)
    for name, value in data.items():
        if isinstance(value, str) and _RATE.match(value) and name not in KEPT_LIMITS:
            changed[name] = RAISED_RATE
    changed.update(options.backend)
    data.update(changed)
    return data, changed


class Process:
    """A child process of this bench (`--child`): ready once it prints READY; each line on its
    stdin names the phase that begins; closing stdin stops it, and it prints what it measured
    in each phase."""

    def __init__(self, name: str, roles: list[str], config: dict[str, Any], folder: Path) -> None:
        self.name = name
        path = folder / f"{name}.json"
        path.write_text(json.dumps({**config, "roles": roles}))
        self.log = folder / f"{name}.log"
        self.cpu: dict[str, float] = {}
        self.inside: dict[str, Any] = {}
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "bench.load", "--child", str(path)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )

    async def ready(self) -> None:
        assert self.popen.stdout is not None
        async with asyncio.timeout(180):
            while True:
                line = await asyncio.to_thread(self.popen.stdout.readline)
                if not line:
                    raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
                if line.decode().strip() == READY:
                    return

    def phase(self, name: str, previous: str | None) -> None:
        now = self.cpu_s()
        if previous is not None:
            self.cpu[previous] = now - self._cpu_at
        self._cpu_at = now
        assert self.popen.stdin is not None
        self.popen.stdin.write(f"{name}\n".encode())
        self.popen.stdin.flush()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def memory_mib(self) -> float:
        """Peak resident memory so far (VmHWM)."""
        status = Path(f"/proc/{self.popen.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024  # type: ignore[index]

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        try:
            out, _ = self.popen.communicate(timeout=30)  # closes stdin
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("stats "):
                self.inside = json.loads(line[6:])


async def run_stack(stack: str, responder: str, options: Options) -> dict[str, Any]:
    """One run: the stack's servers, the backend and responder processes, the users."""
    from tests.conftest import ServerUrls
    from tests.support import servers as srv

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        folder = Path(tmp)
        run = {"port": srv.free_port(), "responder": responder, "options": asdict(options)}
        if stack == "embedded":
            data, changed = bench_settings(stack, folder / "data", None, "", options)
            config = {**run, "settings": data}
            processes = [Process("backend", ["backend", "responder"], config, folder)]
            return await _measure(processes, stack, config, changed)
        with srv.kafka() as bootstrap, srv.s3(folder) as s3_url:
            urls = ServerUrls(kafka=bootstrap, s3=s3_url, redis=srv.redis_url())
            database_url, name = await srv.create_postgres_database()
            try:
                data, changed = bench_settings(stack, folder / "data", urls, database_url, options)
                config = {**run, "settings": data}
                processes = [
                    Process("backend", ["backend"], config, folder),
                    Process("responder", ["responder"], config, folder),
                ]
                return await _measure(processes, stack, config, changed)
            finally:
                await srv.drop_postgres_database(name)


async def _measure(
    processes: list[Process], stack: str, config: dict[str, Any], changed: dict[str, str]
) -> dict[str, Any]:
    phases: list[str] = []
    client_phases: dict[str, float] = {}

    def phase(name: str) -> None:
        for process in processes:
            process.phase(name, phases[-1] if phases else None)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        now = usage.ru_utime + usage.ru_stime
        if phases:
            client_phases[phases[-1]] = now - client_phases.pop("at")
        client_phases["at"] = now
        phases.append(name)

    try:
        for process in processes:
            await process.ready()
        options = Options(**config["options"])
        result = await load(f"http://127.0.0.1:{config['port']}", options, phase)
        result["peak_rss_mib"] = {p.name: p.memory_mib() for p in processes}
    except BaseException:
        for process in processes:
            print(f"--- {process.name} log ---\n{process.tail()}", file=sys.stderr)
        raise
    finally:
        for process in processes:
            process.stop()
    result["peak_rss_mib"]["client"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if result["errors"] or result["lost"]:
        # What the backend and the responder logged, to tell why.
        result["logs"] = {p.name: p.tail() for p in processes}
    client_cpu = {k: v for k, v in client_phases.items() if k != "at"}
    data = config["settings"]
    result.update(
        stack=stack,
        responder=config["responder"],
        cpu_s={**{p.name: p.cpu for p in processes}, "client": client_cpu},
        inside={p.name: p.inside for p in processes if p.inside},
        pool={k: data[k] for k in ("db_pool_size", "db_max_overflow", "db_pool_timeout_seconds")},
        settings_changed=changed,
    )
    return result


# ---- the child processes -------------------------------------------------------------


async def child(config_path: Path) -> None:
    """The backend and/or the responder, until stdin closes; then what it saw in each phase:
    the event loop's lag and the database connections checked out of the pool."""
    config = json.loads(await asyncio.to_thread(config_path.read_text))
    options = Options(**config["options"])
    from bishop_backend.main import create_app
    from bishop_backend.serving import Server
    from bishop_backend.settings import Settings

    settings = Settings(_env_file=None, **config["settings"])
    tasks: list[asyncio.Task[None]] = []
    server = None
    if "responder" in config["roles"]:
        if config["responder"] == "instant":
            tasks.append(asyncio.create_task(instant_responder(settings.bus_url)))
        else:
            tasks.append(asyncio.create_task(demo_worker(settings, options.text)))
    app = None
    if options.trace:
        Probe.trace_classes()
    if "backend" in config["roles"]:
        app = create_app(settings)
        server = Server(
            app, settings=settings, host="127.0.0.1", port=config["port"], log_level="warning"
        )
        serving = asyncio.create_task(server.serve())
        async with asyncio.timeout(120):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # the responder subscribed and started
    for task in tasks:
        if task.done():
            task.result()
    probe = Probe(app.state.infra.engine.sync_engine.pool if app is not None else None)
    if options.trace:
        probe.trace_gc()
    if options.trace and app is not None:
        probe.trace_engine(app.state.infra.engine.sync_engine)
    watching = asyncio.create_task(probe.watch())
    print(READY, flush=True)
    profiler = cProfile.Profile() if options.profile else None
    while line := await asyncio.to_thread(sys.stdin.readline):
        probe.begin(line.strip())
        if profiler is not None and probe.phase == "messages":
            profiler.enable()
        elif profiler is not None and probe.phase == "done":
            profiler.disable()
            profiler.dump_stats(f"{options.profile}.{'-'.join(config['roles'])}")
    watching.cancel()
    print("stats " + json.dumps(probe.summary()), flush=True)
    if server is not None:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Probe:
    """Samples, per phase, how late the event loop wakes up (a loop busy with CPU work wakes
    late: every request waits that long) and how many pooled connections are checked out."""

    INTERVAL = 0.05

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.phase = "warm-up"
        self.lag: dict[str, list[float]] = defaultdict(list)
        self.checked_out: dict[str, int] = defaultdict(int)
        self.rss: dict[str, int] = defaultdict(int)
        self.tasks: dict[str, int] = defaultdict(int)
        self.status = Path("/proc/self/status")

    def begin(self, phase: str) -> None:
        self.phase = Probe.current = phase

    # `--trace`: wall time, per phase, of waits for a pooled connection, SQL statements by verb,
    # commits, and the backend's handling of each kind of event.
    timings: ClassVar[dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(list))
    current: ClassVar[str] = "warm-up"

    @classmethod
    def timed(cls, name: str, started: float) -> None:
        cls.timings[cls.current][name].append(time.perf_counter() - started)

    @classmethod
    def trace_classes(cls) -> None:
        """Before the app starts: its orchestrator subscribes a bound `handle`."""
        from bishop_backend.services.orchestrator import Orchestrator
        from sqlmodel.ext.asyncio.session import AsyncSession

        commit = AsyncSession.commit

        async def timed_commit(session: AsyncSession) -> None:
            started = time.perf_counter()
            try:
                await commit(session)
            finally:
                cls.timed("commit", started)

        AsyncSession.commit = timed_commit  # type: ignore[method-assign]
        handle = Orchestrator.handle

        async def timed_handle(orchestrator: Orchestrator, event_: Any) -> None:
            started = time.perf_counter()
            try:
                await handle(orchestrator, event_)
            finally:
                cls.timed(f"handle {event_.event}", started)

        Orchestrator.handle = timed_handle  # type: ignore[method-assign]

    def trace_gc(self) -> None:
        """Time the garbage collector's pauses, by generation: they stop the event loop."""
        started: list[float] = []

        def callback(stage: str, info: dict[str, int]) -> None:
            if stage == "start":
                started.append(time.perf_counter())
            elif started:
                self.timed(f"gc pause, generation {info['generation']}", started.pop())

        gc.callbacks.append(callback)

    def trace_engine(self, engine: Any) -> None:
        from sqlalchemy import event

        pool, do_get = engine.pool, engine.pool._do_get

        def waited_get() -> Any:
            started = time.perf_counter()
            try:
                return do_get()
            finally:
                self.timed("pool checkout", started)

        pool._do_get = waited_get

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            conn.info.setdefault("bench_started", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            verb = statement.split(None, 1)[0].upper()
            self.timed(f"sql {verb}", conn.info["bench_started"].pop())

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.INTERVAL)
            self.lag[self.phase].append(loop.time() - start - self.INTERVAL)
            self.tasks[self.phase] = max(self.tasks[self.phase], len(asyncio.all_tasks()))
            found = re.search(r"VmRSS:\s+(\d+) kB", self.status.read_text())
            if found:
                self.rss[self.phase] = max(self.rss[self.phase], int(found[1]))
            if self.pool is not None:
                used = self.pool.checkedout()
                self.checked_out[self.phase] = max(self.checked_out[self.phase], used)

    def summary(self) -> dict[str, Any]:
        return {
            phase: {
                "loop_lag_ms": percentiles(lags),
                "max_rss_mib": self.rss[phase] / 1024,
                "max_tasks": self.tasks[phase],
                **({"max_checked_out": self.checked_out[phase]} if self.pool else {}),
                **(
                    {"ms": {k: percentiles(v) for k, v in self.timings[phase].items()}}
                    if phase in self.timings
                    else {}
                ),
            }
            for phase, lags in self.lag.items()
            if phase != "done"
        }


async def instant_responder(bus_url: str) -> None:
    """Answers every `inference_response` at once, as bench/chat_turn.py does."""
    from bishop_contracts.events import Event, InferenceResponse, SaveResponse
    from bishop_contracts.topics import Topic
    from bishop_infra.bus import bus_from_url

    bus = bus_from_url(bus_url, client_id="bench-responder")

    async def answer(event: Event) -> None:
        if isinstance(event, InferenceResponse):
            reply = SaveResponse(message_id=event.message_id, generated_text=event.text)
            await bus.publish(Topic.SAVE_RESPONSE, reply)

    bus.subscribe(f"bench-{uuid.uuid4().hex[:6]}", [Topic.LLM_INFERENCE], answer)
    await bus.start()
    try:
        await asyncio.Event().wait()
    finally:
        await bus.stop()


async def demo_worker(settings: Any, overrides: dict[str, Any]) -> None:
    """The real ml-text worker, demo profile (a tiny untrained model built from a config)."""
    from bishop_text import worker as text_worker
    from bishop_text.settings import TextSettings

    text = TextSettings(
        _env_file=None,
        data_dir=settings.data_dir,
        bus_url=settings.bus_url,
        state_url=settings.state_url,
        storage_url=settings.resolved_storage_url,
        profile="demo",
        **overrides,
    )
    await text_worker.run(text, group=f"ml-text-{uuid.uuid4().hex[:6]}")


# ---- output ------------------------------------------------------------------------


def report(r: dict[str, Any]) -> None:
    def triple(op: str) -> str:
        s = r["ms"].get(op) or {}
        return " / ".join(f"{s[k]:.0f}" for k in ("p50", "p95", "p99")) if s else "-"

    errors = ", ".join(f"{k} ×{v}" for k, v in sorted(r["errors"].items())) or "none"
    lost = ", ".join(f"{k} ×{v}" for k, v in sorted(r["lost_by_reason"].items())) or "none"
    memory = ", ".join(f"{k} {v:.0f} MiB" for k, v in r["peak_rss_mib"].items())
    lines = [
        f"\n## {r['stack']} stack, {r['responder']} responder: "
        f"{r['users']} users × {r['messages']} messages"
        + (", all first messages together" if r.get("together") else ""),
        f"pool: {r['pool']}; settings changed for the bench: {r['settings_changed']}",
        f"requests {r['requests']}, errors {sum(r['errors'].values())} ({errors})",
        f"sent {r['sent']}, not sent {r['not_sent']}, replies {r['replies']}, "
        f"lost {r['lost']} ({lost})",
        f"setup {r['setup_s']:.1f} s (to the last user set up), messages {r['chat_s']:.1f} s "
        f"({r['replies_per_s']:.1f} replies/s)",
        f"send ms p50/p95/p99: {triple('send')} (first message {triple('send, first message')}"
        f", later ones {triple('send, later ones')}); "
        f"time to text ms p50/p95/p99: {triple('time to text')}",
        f"setup ms p50/p95/p99: signup {triple('signup')}, login {triple('login')}, "
        f"avatar {triple('create avatar')}, chat {triple('create chat')}",
        f"peak RSS: {memory}",
    ]
    for name, phases in r["cpu_s"].items():
        inside = r["inside"].get(name, {})
        for phase, cpu in phases.items():
            seen = inside.get(phase, {})
            lag = seen.get("loop_lag_ms") or {}
            pool = (
                f", max connections checked out {seen['max_checked_out']}"
                if "max_checked_out" in seen
                else ""
            )
            if not seen:
                lines.append(f"{name}, {phase}: CPU {cpu:.1f} s")
                continue
            lines.append(
                f"{name}, {phase}: CPU {cpu:.1f} s, RSS up to {seen['max_rss_mib']:.0f} MiB"
                f", event loop lag ms p50/p99/max {lag['p50']:.0f} / {lag['p99']:.0f}"
                f" / {lag['max']:.0f}, asyncio tasks up to {seen['max_tasks']}" + pool
            )
            for op, t in sorted(seen.get("ms", {}).items()):
                lines.append(
                    f"    {op}: n {t['n']}, ms p50/p95/p99/max {t['p50']:.1f} / {t['p95']:.1f}"
                    f" / {t['p99']:.1f} / {t['max']:.1f}"
                )
    for kind, example in r["error_examples"].items():
        lines.append(f"first {kind}: {example}")
    for name, log in r.get("logs", {}).items():
        lines.append(f"--- the end of the {name}'s log ---\n{log}")
    print("\n".join(lines))


def table(results: list[dict[str, Any]]) -> None:
    def triple(s: dict[str, float]) -> str:
        return " / ".join(f"{s[k]:.0f}" for k in ("p50", "p95", "p99")) if s else "-"

    def p95(s: dict[str, float]) -> str:
        return f"{s['p95']:.0f}" if s else "-"

    print(
        "\n| stack | responder | users × msgs | start | pause s | requests | errors | lost"
        " | send p50 / p95 / p99 ms | send p95 ms, first message / later ones"
        " | time to text p50 / p95 / p99 ms | backend peak RSS MiB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        ms = r["ms"]
        print(
            f"| {r['stack']} | {r['responder']} | {r['users']} × {r['messages']}"
            f" | {'together' if r.get('together') else 'as set up'} | {r['think_s']:g}"
            f" | {r['requests']} | {sum(r['errors'].values())} | {r['lost']}"
            f" | {triple(ms.get('send', {}))}"
            f" | {p95(ms.get('send, first message', {}))} / {p95(ms.get('send, later ones', {}))}"
            f" | {triple(ms.get('time to text', {}))} | {r['peak_rss_mib']['backend']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--stack", choices=["embedded", "servers", "both"], default="embedded")
    parser.add_argument("--responder", choices=["instant", "demo"], default="instant")
    parser.add_argument(
        "--reply-timeout",
        type=float,
        default=None,
        help="seconds a reply's text may take before it counts as lost "
        "(default 60, with the demo model 600)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds (on average) a user pauses after a reply before the next message; "
        "paced users also start at a random moment within that time (default 0: all at once)",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="hold every user back until all are set up: all first messages in one instant",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a backend setting for the run (e.g. db_pool_size=20); repeatable",
    )
    parser.add_argument(
        "--text-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an ml-text setting for the demo model (e.g. max_new_tokens=50); repeatable",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="time pool waits, SQL, commits and event handling inside the backend",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile the event loop thread of each child during the messages phase, "
        "to PATH.backend (and PATH.responder)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child))
        return
    options = Options(
        users=args.users,
        messages=args.messages,
        reply_timeout=args.reply_timeout or (600.0 if args.responder == "demo" else 60.0),
        think=args.think,
        together=args.together,
        backend=dict(item.split("=", 1) for item in args.set),
        text=dict(item.split("=", 1) for item in args.text_set),
        trace=args.trace,
        profile=str(Path.cwd() / args.profile) if args.profile else None,
    )
    stacks = ["embedded", "servers"] if args.stack == "both" else [args.stack]
    results = []
    for stack in stacks:
        result = asyncio.run(run_stack(stack, args.responder, options))
        results.append(result)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        report(result)
    table(results)


if __name__ == "__main__":
    main()
