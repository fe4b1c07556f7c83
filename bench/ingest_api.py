"""`bishop up`: API latency and an unrelated user's reply latency while hostile materials are
ingested, idle against busy.

The real embedded stack, started as a user starts it (`bishop up` in a process of its own, with
its own data folder and ports, demo profile, offline): backend, browser app, ml-text worker (with
its ingest child process) and sound worker. Two users, both through the HTTP API on 127.0.0.1:

- user A, unrelated: every `--interval` seconds one cheap authenticated request
  (`GET /users/me`, `GET /avatars`, `GET …/chat/{id}/msgs?limit=20`, in turn), timed; and
  meanwhile replies one after another: `POST …/msgs`, then its SSE stream until `event: text`
  (time to text, from the send), read on until the dub (`dub`/`dub_error`), a short pause, the
  next message. The demo model is untrained: its words are never looked at.
- user B, in busy phases only (a process of its own, so that its uploads take nothing from A's
  timers): the hostile materials of `tests/text/hostile.py` (five one-line texts of the shapes
  cleaning was once quadratic on, a Telegram zip bomb, a DOCX bomb), uploaded as `basic`
  materials one after another, each waited for (`GET …/train/materials`) until `processed` or
  `failed`, then deleted. A busy phase ends with the material then in flight.

Phases alternate, idle then busy, `--rounds` times, so that the drifting load of the machine's
other users weighs on both; the whole run stops within `--budget` seconds, and the `bishop up`
process tree is ended in any case. See docs/performance.md.

    uv run python -m bench.ingest_api
    uv run python -m bench.ingest_api --rounds 1 --phase-seconds 10 --text-mb 0.2 --budget 150
"""

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from tests.text import hostile

BISHOP = Path(sys.executable).parent / "bishop"
PASSWORD = "ingest-api-bench-1"
MATERIALS = [*hostile.RUN_ON_LINES, "telegram zip bomb", "DOCX bomb"]
# Events that end a reply's stream (bishop_backend.services.replies).
FAILURES = {"error", "timeout", "reconnect"}
DUB_ENDINGS = {"dub", "dub_error"}
REQUEST_TIMEOUT = 60.0
CPU_OF = ("bishop up", "children", "bench", "others")
T = TypeVar("T")


@dataclass
class Options:
    rounds: int = 4
    phase_seconds: float = 20.0
    budget: float = 300.0  # seconds for the whole run, start-up included
    interval: float = 0.03  # between user A's cheap requests
    tokens: int = 32  # per reply: BISHOP_MIN_NEW_TOKENS = BISHOP_MAX_NEW_TOKENS
    reply_pause: float = 0.5  # after a reply's dub, before the next message
    # Not counted: the model loaded, and the chat's history as long as a prompt takes it (the
    # backend's 20 turns), so that every counted reply has a prompt of the same length.
    warm_replies: int = 12
    reply_timeout: float = 120.0
    text_bytes: int = 5 * 10**6
    materials: list[str] = field(default_factory=lambda: list(MATERIALS))
    material_timeout: float = 180.0  # a material with no outcome by then counts as such
    startup_timeout: float = 180.0


@dataclass
class Phase:
    round: int
    kind: str  # idle | busy
    seconds: float = 0.0
    api: list[float] = field(default_factory=list)
    api_errors: Counter[str] = field(default_factory=Counter)
    send: list[float] = field(default_factory=list)
    text: list[float] = field(default_factory=list)
    dub: list[float] = field(default_factory=list)
    reply_errors: Counter[str] = field(default_factory=Counter)
    materials: list[dict[str, Any]] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at its start and end
    cpu: dict[str, float] = field(default_factory=dict)  # seconds: see `cpu_used`
    note: str = ""


# ---- the stack: `bishop up` in a process of its own --------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """`bishop up` with its own data folder and ports, demo profile, offline."""

    def __init__(self, folder: Path, tokens: int) -> None:
        self.folder = folder
        self.port, web = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "console.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BISHOP_")}
        env.update(
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
            BISHOP_PROFILE="demo",
            # Replies of one length (about a second of the demo model), at its usual sampling.
            BISHOP_MAX_NEW_TOKENS=str(tokens),
            BISHOP_MIN_NEW_TOKENS=str(tokens),
        )
        data = folder / "data"
        data.mkdir()
        command = [str(BISHOP), "up", "--port", str(self.port), "--web-port", str(web)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--data-dir", str(data)],
                env=env,
                cwd=folder,  # no `.env` of the checkout
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.main = psutil.Process(self.process.pid)

    def console(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    async def ready(self, seconds: float) -> None:
        """Once the API answers and both workers report in."""
        deadline = time.monotonic() + seconds
        body: Any = None
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"bishop up exited:\n{self.console()}")
                try:
                    answer = await client.get(f"{self.url}/api/v1/utils/health-check")
                    body = answer.json()
                    workers = body.get("workers", {})
                    if answer.status_code == 200 and all(
                        workers.get(w, {}).get("status") == "ok" for w in ("ml-text", "ml-sound")
                    ):
                        return
                except (httpx.HTTPError, ValueError):
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError(f"bishop up not ready in {seconds:g} s: {body}\n{self.console()}")

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C would; then SIGKILL to whatever of the tree is left."""
        try:
            tree = [self.main, *self.main.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for p in tree[1:]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(tree[1:], timeout=5)


def cpu_reading() -> dict[str, Any]:
    """CPU seconds so far: of this bench's process tree (`bishop up` and its ingest child
    included), per process; and of the whole machine."""
    me = psutil.Process()
    seconds: dict[int, float] = {}
    for p in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            seconds[p.pid] = t.user + t.system
    m = psutil.cpu_times()
    busy = m.user + m.nice + m.system + m.irq + m.softirq + m.steal
    return {"pids": seconds, "machine": busy}


def cpu_used(before: dict[str, Any], after: dict[str, Any], stack: Stack) -> dict[str, float]:
    """CPU seconds between two readings: bishop up's process, its children (the ingest child),
    this bench's own processes (user A's client, user B's process), everything else on the
    machine (other people's work)."""
    delta = {pid: s - before["pids"].get(pid, 0.0) for pid, s in after["pids"].items()}
    children: set[int] = set()
    with contextlib.suppress(psutil.NoSuchProcess):
        children = {p.pid for p in stack.main.children(recursive=True)}
    used = {
        "bishop up": delta.pop(stack.main.pid, 0.0),
        "children": sum(delta.pop(pid, 0.0) for pid in children),
        "bench": sum(delta.values()),
    }
    used["others"] = max(0.0, after["machine"] - before["machine"] - sum(used.values()))
    return used


# ---- users ------------------------------------------------------------------------------


@dataclass
class User:
    token: str
    avatar: str
    chat: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def new_user(client: httpx.AsyncClient, name: str, with_chat: bool) -> User:
    email = f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "full_name": name}
    (await client.post("/users/signup", json=body)).raise_for_status()
    form = {"username": email, "password": PASSWORD}
    token = (await client.post("/login/access-token", data=form)).raise_for_status()
    user = User(token.json()["access_token"], "")
    avatar = await client.post("/avatars", json={"name": f"{name}'s avatar"}, headers=user.headers)
    user.avatar = avatar.raise_for_status().json()["id"]
    if with_chat:
        chat = await client.post(
            f"/avatars/{user.avatar}/chat", json={"title": "bench"}, headers=user.headers
        )
        user.chat = chat.raise_for_status().json()["id"]
    return user


async def probe(
    client: httpx.AsyncClient, user: User, phase: Phase, deadline: float, interval: float
) -> None:
    """User A's cheap requests, one every `interval` (never a burst to catch up)."""
    paths = ["/users/me", "/avatars", f"/avatars/{user.avatar}/chat/{user.chat}/msgs?limit=20"]
    next_at, i = time.perf_counter(), 0
    while time.perf_counter() < deadline:
        path = paths[i % len(paths)]
        i += 1
        start = time.perf_counter()
        try:
            answer = await client.get(path, headers=user.headers)
        except httpx.HTTPError as exc:
            phase.api_errors[type(exc).__name__] += 1
        else:
            if answer.status_code == 200:
                phase.api.append(time.perf_counter() - start)
            else:
                phase.api_errors[f"HTTP {answer.status_code}"] += 1
        next_at += interval
        if (delay := next_at - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        else:
            next_at = time.perf_counter()


async def reply(client: httpx.AsyncClient, user: User, options: Options) -> dict[str, Any]:
    """One message of user A: send, its time to `text`, then to the dub; or why not."""
    msgs = f"/avatars/{user.avatar}/chat/{user.chat}/msgs"
    start = time.perf_counter()
    message = {"message": "Расскажи, как прошёл день?"}
    sent = await client.post(msgs, json=message, headers=user.headers)
    if sent.status_code != 201:
        return {"error": f"send: HTTP {sent.status_code}"}
    out: dict[str, Any] = {"send": time.perf_counter() - start}
    url = f"{msgs}/{sent.json()['response_id']}/response/stream"
    kind = ""
    try:
        async with (
            asyncio.timeout(options.reply_timeout),
            client.stream("GET", url, headers=user.headers) as stream,
        ):
            if stream.status_code != 200:
                return {**out, "error": f"stream: HTTP {stream.status_code}"}
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                    if kind == "text":
                        out["text"] = time.perf_counter() - start
                    elif kind in DUB_ENDINGS:
                        out["dub"] = time.perf_counter() - start
                        if kind == "dub_error":
                            out["dub_error"] = True
                        return out
                elif line.startswith("data:") and kind in FAILURES:
                    return {**out, "error": f"`{kind}`: {line[5:].strip()[:120]}"}
    except TimeoutError:
        return {**out, "error": f"no dub in {options.reply_timeout:g} s"}
    except httpx.HTTPError as exc:
        return {**out, "error": f"stream: {type(exc).__name__}"}
    return {**out, "error": "stream closed before the dub"}


async def replies(
    client: httpx.AsyncClient, user: User, phase: Phase, deadline: float, options: Options
) -> None:
    """User A's replies one after another; one begun before `deadline` is waited for."""
    while time.perf_counter() < deadline:
        try:
            r = await reply(client, user, options)
        except httpx.HTTPError as exc:
            r = {"error": f"send: {type(exc).__name__}"}
        if "send" in r:
            phase.send.append(r["send"])
        if "text" in r:
            phase.text.append(r["text"])
        if "dub" in r:
            phase.dub.append(r["dub"])
        if "error" in r:
            phase.reply_errors[r["error"]] += 1
        elif r.get("dub_error"):
            phase.reply_errors["dub_error"] += 1
        await asyncio.sleep(options.reply_pause)


# ---- user B: hostile materials, in a process of its own ----------------------------------


def feed(
    api: str,
    token: str,
    avatar: str,
    files: list[tuple[str, str]],
    timeout: float,
    stop: Any,
    out: Any,
) -> None:
    """Upload `files` in turn until `stop` is set, each waited for to its outcome, then deleted;
    put each outcome on `out`."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, headers=headers, timeout=REQUEST_TIMEOUT) as client:
        out.put({"ready": True})
        i = 0
        while not stop.is_set():
            name, path = files[i % len(files)]
            i += 1
            start = time.monotonic()
            with open(path, "rb") as f:
                sent = client.post(
                    f"/avatars/{avatar}/train",
                    data={"type": "basic"},
                    files={"file": (Path(path).name, f)},
                )
            uploaded = time.monotonic() - start
            if sent.status_code != 201:
                out.put({"name": name, "outcome": f"upload: HTTP {sent.status_code}: {sent.text}"})
                time.sleep(1)
                continue
            material = sent.json()[0]["id"]
            status, detail = "no outcome", f"none in {timeout:g} s"
            while time.monotonic() - start < timeout:
                found = client.get(f"/avatars/{avatar}/train/materials")
                mine = [m for m in found.json() if m["id"] == material] if found.is_success else []
                if mine and mine[0]["status"] in ("processed", "failed"):
                    status, detail = mine[0]["status"], mine[0]["status_detail"] or ""
                    break
                time.sleep(0.25)
            seconds = time.monotonic() - start
            client.delete(f"/avatars/{avatar}/train/materials/{material}")
            outcome = status if status == "processed" else f"{status}: {detail}"
            out.put({"name": name, "outcome": outcome, "seconds": seconds, "upload": uploaded})


class Feeder:
    """User B's process for one busy phase."""

    def __init__(self, api: str, user: User, files: list[tuple[str, str]], timeout: float):
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.out = context.Queue()
        self.process = context.Process(
            target=feed,
            args=(api, user.token, user.avatar, files, timeout, self.stop_event, self.out),
            daemon=True,
        )
        self.timeout = timeout
        self.outcomes: list[dict[str, Any]] = []

    def _drain(self) -> bool:
        ready = False
        while True:
            try:
                item = self.out.get_nowait()
            except queue.Empty:
                return ready
            if "ready" in item:
                ready = True
            else:
                self.outcomes.append(item)

    async def start(self) -> None:
        self.process.start()
        deadline = time.monotonic() + 60
        while not self._drain():
            if not self.process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("user B's process did not start")
            await asyncio.sleep(0.05)

    async def stop(self) -> str:
        """Once the material in flight has its outcome; a note if it had to be killed."""
        self.stop_event.set()
        deadline = time.monotonic() + self.timeout + 30
        while self.process.is_alive() and time.monotonic() < deadline:
            self._drain()
            await asyncio.sleep(0.1)
        note = ""
        if self.process.is_alive():
            self.process.kill()
            note = "user B's last material still in flight when this phase began"
        self.process.join(5)
        self._drain()
        return note


def build_materials(folder: Path, names: list[str], text_bytes: int) -> list[tuple[str, str]]:
    files = []
    for i, name in enumerate(names):
        if name in hostile.RUN_ON_LINES:
            path = hostile.run_on_text(folder / f"run-on-{i}.txt", name, text_bytes)
        elif name == "telegram zip bomb":
            path = hostile.telegram_zip_bomb(folder / "chat-export.zip")
        elif name == "DOCX bomb":
            path = hostile.docx(folder / "notes.docx", 100_000)
        else:
            raise ValueError(f"no such material: {name!r} (one of {', '.join(MATERIALS)})")
        files.append((name, str(path)))
    return files


# ---- the run ----------------------------------------------------------------------------


async def run(options: Options, say: Any = print) -> dict[str, Any]:
    """Start `bishop up`, measure the phases, end it; the phases and what was set."""
    began = time.monotonic()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-api-") as tmp:
        folder = Path(tmp)
        (folder / "materials").mkdir()
        files = build_materials(folder / "materials", options.materials, options.text_bytes)
        say(f"materials built ({time.monotonic() - began:.1f} s); starting bishop up")
        stack = Stack(folder, options.tokens)
        phases: list[Phase] = []
        stopped = ""
        try:
            await stack.ready(min(options.startup_timeout, options.budget))
            say(f"bishop up ready ({time.monotonic() - began:.1f} s)")
            # Rounds are only begun if they fit; this bounds a phase that hangs.
            async with asyncio.timeout(options.budget - (time.monotonic() - began) + 60):
                await measure(stack, files, options, began, say, phases)
        except TimeoutError:
            stopped = f"stopped at the budget ({options.budget:g} s and a minute)"
            say(stopped)
        except BaseException:
            say(f"--- the end of bishop up's console ---\n{stack.console()}")
            raise
        finally:
            stack.stop()
    return {
        "options": asdict(options),
        "phases": [asdict(p) for p in phases],
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "seconds": time.monotonic() - began,
        "stopped": stopped,
        "bishop_up_pid": stack.process.pid,
    }


async def measure(
    stack: Stack,
    files: list[tuple[str, str]],
    options: Options,
    began: float,
    say: Any,
    phases: list[Phase],
) -> None:
    """User A idle, then with user B feeding materials, round after round, into `phases`."""
    api = stack.url + "/api/v1"
    timeout = httpx.Timeout(REQUEST_TIMEOUT)
    async with (
        httpx.AsyncClient(base_url=api, timeout=timeout) as client,
        httpx.AsyncClient(base_url=api, timeout=timeout) as chat_client,
    ):
        a = await new_user(client, "User A", with_chat=True)
        b = await new_user(client, "User B", with_chat=False)
        # Warm-up, not counted: the demo model built and loaded, the voice, the chat's history
        # filled, the ingest child started (by a plain text of B's), first queries.
        warm = [await reply(chat_client, a, options) for _ in range(options.warm_replies)]
        if all("error" in r for r in warm):
            raise RuntimeError(f"no warm-up reply came: {warm}")
        plain = stack.folder / "materials" / "plain.txt"
        plain.write_text("Сегодня был хороший день. Мы гуляли в парке.\n" * 20)
        feeder = Feeder(api, b, [("plain text", str(plain))], options.material_timeout)
        try:
            await feeder.start()
            await feeder.stop()
        finally:
            if feeder.process.is_alive():
                feeder.process.kill()
        if [m["outcome"] for m in feeder.outcomes][:1] != ["processed"]:
            raise RuntimeError(f"warm-up material: {feeder.outcomes}")
        say(f"warmed up ({time.monotonic() - began:.1f} s)")

        note = ""
        for r in range(1, options.rounds + 1):
            # A round is started only if both its phases, and ending the busy one, fit.
            left = options.budget - (time.monotonic() - began)
            if left < 2 * options.phase_seconds + 30:
                say(f"budget: {r - 1} of {options.rounds} rounds fit in {options.budget:g} s")
                break
            for kind in ("idle", "busy"):
                phase = Phase(r, kind, note=note)
                feeder = Feeder(api, b, files, options.material_timeout) if kind == "busy" else None
                try:
                    if feeder is not None:
                        await feeder.start()
                    cpu = cpu_reading()
                    phase.load = (os.getloadavg()[0], 0.0)
                    start = time.perf_counter()
                    deadline = start + options.phase_seconds
                    await asyncio.gather(
                        probe(client, a, phase, deadline, options.interval),
                        replies(chat_client, a, phase, deadline, options),
                    )
                    phase.seconds = time.perf_counter() - start
                    phase.cpu = cpu_used(cpu, cpu_reading(), stack)
                    phase.load = (phase.load[0], os.getloadavg()[0])
                    note = ""
                    if feeder is not None:
                        note = await feeder.stop()
                        phase.materials = feeder.outcomes
                finally:
                    if feeder is not None and feeder.process.is_alive():
                        feeder.process.kill()
                phases.append(phase)
                say(line(phase))


# ---- output -----------------------------------------------------------------------------


def pct(samples: list[float], p: float) -> float:
    """The p-th percentile in ms (nearest rank); nan if none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


def ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def outcomes(materials: list[dict[str, Any]]) -> str:
    """How many materials got each outcome (processed, failed, ...)."""
    counts = Counter(m["outcome"].split(":")[0] for m in materials)
    return ", ".join(f"{what} {n}" for what, n in counts.items()) or "-"


def line(p: Phase) -> str:
    return (
        f"round {p.round} {p.kind}: API n {len(p.api)} p50/p95 {ms(pct(p.api, 50))} / "
        f"{ms(pct(p.api, 95))} ms, replies {len(p.text)} p50/p95 {ms(pct(p.text, 50))} / "
        f"{ms(pct(p.text, 95))} ms, materials {len(p.materials)}, load {p.load[1]:.2f}"
    )


def ratio(busy: float, idle: float) -> str:
    return "-" if math.isnan(busy) or math.isnan(idle) or not idle else f"{busy / idle:.2f}×"


def report(result: dict[str, Any]) -> None:
    o = result["options"]
    phases = [Phase(**{**p, "load": tuple(p["load"])}) for p in result["phases"]]
    print(
        f"\n{len(phases) // 2} rounds of idle and busy phases, {o['phase_seconds']:g} s each; "
        f"API: a request every {o['interval'] * 1000:g} ms; replies of {o['tokens']} tokens; "
        f"texts of {o['text_bytes'] / 1e6:g} MB; run {result['seconds']:.0f} s, load average "
        f"{result['load_average']['start']:.2f} at the start, "
        f"{result['load_average']['end']:.2f} at the end\n"
    )
    print(
        "| round | phase | API n | API p50 / p95 ms | replies | time to text p50 / p95 ms "
        "| send p95 ms | dub p50 ms | errors | CPU s: bishop up / ingest child / bench / others "
        "| load (1 min) | materials (outcomes) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for p in phases:
        errors = sum(p.api_errors.values()) + sum(p.reply_errors.values())
        print(
            f"| {p.round} | {p.kind}{' *' if p.note else ''} | {len(p.api)}"
            f" | {ms(pct(p.api, 50))} / {ms(pct(p.api, 95))} | {len(p.text)}"
            f" | {ms(pct(p.text, 50))} / {ms(pct(p.text, 95))} | {ms(pct(p.send, 95))}"
            f" | {ms(pct(p.dub, 50))} | {errors}"
            f" | {' / '.join(f'{p.cpu.get(k, 0):.1f}' for k in CPU_OF)}"
            f" | {p.load[0]:.2f}–{p.load[1]:.2f} | {outcomes(p.materials)} |"
        )
    idle = [p for p in phases if p.kind == "idle"]
    busy = [p for p in phases if p.kind == "busy"]
    pooled = {
        kind: (
            [s for p in group for s in p.api],
            [s for p in group for s in p.text],
        )
        for kind, group in (("idle", idle), ("busy", busy))
    }
    for kind, (api, text) in pooled.items():
        print(
            f"| all | {kind} | {len(api)} | {ms(pct(api, 50))} / {ms(pct(api, 95))} | {len(text)}"
            f" | {ms(pct(text, 50))} / {ms(pct(text, 95))} | | | | | | |"
        )
    print("\n| busy / idle | API p95 | reply median (time to text) |\n|---|---|---|")
    for i, b in zip(idle, busy, strict=False):
        print(
            f"| round {b.round} | {ratio(pct(b.api, 95), pct(i.api, 95))}"
            f" | {ratio(pct(b.text, 50), pct(i.text, 50))} |"
        )
    (ia, it), (ba, bt) = pooled["idle"], pooled["busy"]
    print(f"| all rounds | {ratio(pct(ba, 95), pct(ia, 95))} | {ratio(pct(bt, 50), pct(it, 50))} |")
    if result.get("stopped"):
        print(result["stopped"])
    if busy and all(p.api and p.text for p in phases):
        medians = [pct(b.text, 50) / pct(i.text, 50) for i, b in zip(idle, busy, strict=False)]
        print(f"median of the rounds' reply ratios: {statistics.median(medians):.2f}×")

    materials = [m for p in busy for m in p.materials]
    print("\nmaterials in the busy phases (upload to outcome):")
    for name in dict.fromkeys(m["name"] for m in materials):
        mine = [m for m in materials if m["name"] == name]
        seconds = [m["seconds"] for m in mine if "seconds" in m]
        spread = f"{min(seconds):.1f}–{max(seconds):.1f} s" if seconds else "-"
        kinds = Counter(m["outcome"][:110] for m in mine)
        said = "; ".join(f"{k} (×{n})" for k, n in kinds.items())
        print(f"- {name}: {len(mine)}, {spread}: {said}")
    for p in phases:
        errors = {**p.api_errors, **p.reply_errors}
        if errors:
            print(f"round {p.round} {p.kind}, errors: {errors}")
        if p.note:
            print(f"round {p.round} {p.kind} *: {p.note}")


async def until_terminated(work: Coroutine[Any, Any, T]) -> T:
    """`work`, cancelled by SIGTERM as by Ctrl-C, so that `bishop up` is ended either way (it
    runs in a session of its own, out of reach of the terminal's signals)."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Options()
    parser.add_argument("--rounds", type=int, default=d.rounds)
    parser.add_argument("--phase-seconds", type=float, default=d.phase_seconds)
    parser.add_argument(
        "--budget", type=float, default=d.budget, help="seconds for the whole run, at most"
    )
    parser.add_argument(
        "--interval", type=float, default=d.interval, help="seconds between A's cheap requests"
    )
    parser.add_argument("--tokens", type=int, default=d.tokens, help="tokens per reply")
    parser.add_argument(
        "--text-mb", type=float, default=d.text_bytes / 1e6, help="size of each one-line text"
    )
    parser.add_argument(
        "--material",
        action="append",
        choices=MATERIALS,
        help="a hostile material to feed (repeatable; default: all of them)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    options = Options(
        rounds=args.rounds,
        phase_seconds=args.phase_seconds,
        budget=args.budget,
        interval=args.interval,
        tokens=args.tokens,
        text_bytes=int(args.text_mb * 1e6),
        materials=args.material or list(MATERIALS),
    )
    result = asyncio.run(until_terminated(run(options)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=list))
    report(result)


if __name__ == "__main__":
    main()
