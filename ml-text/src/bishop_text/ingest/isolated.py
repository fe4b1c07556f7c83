"""Ingest in a process of its own, beside the worker's replies.

Cleaning a 50 MiB text, parsing a chat export or transcribing an hour of speech is CPU work
that holds the GIL: in the worker's own process it would slow every avatar's replies. The
ingest child takes materials one at a time, at a lower CPU priority than the replies (by
default Linux's idle class, which gives way to any other task at once; see docs/performance.md
for what each priority costs a reply), and is the first the kernel kills when memory runs out.
It lives on between materials, so whisper is loaded once; a material over its time budget has
the child killed, one that crashes it fails alone, and the next material gets a new child.

The child imports neither torch nor transformers until a recording needs whisper: it starts in
about a second.
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from bishop_text.child_process import die_with_parent, main_module_left_behind, spawn_context
from bishop_text.ingest import Transcript, extract
from bishop_text.ingest.errors import MaterialError
from bishop_text.ingest.limits import Limits, duration
from bishop_text.ingest.media import Transcriber
from bishop_text.retrieval.embeddings import Embedder, load_embedder

log = logging.getLogger("bishop.text")
STARTUP_SECONDS = 120.0  # imports alone take seconds on a cold disk of a busy machine
EXIT_SECONDS = 5.0
LOW_PRIORITY_NICENESS = 19
OOM_SCORE_ADJ = 1000  # of the worker and its ingest child, the kernel kills the child

Extract = Callable[..., Transcript]  # bishop_text.ingest.extract and its stand-ins in tests
CpuPriority = Literal["idle", "low", "normal"]


@dataclass(frozen=True)
class Whisper:
    """Which speech model the child loads, on the first recording it gets."""

    model: str  # a size name or a checkpoint file; "": the demo's tiny one, built in demo_folder
    device: str
    demo_folder: str = ""

    def transcriber(self) -> Transcriber:
        if self.model:
            return Transcriber(self.model, self.device)
        from bishop_text.models import demo_whisper

        return Transcriber(lambda: str(demo_whisper(Path(self.demo_folder))), self.device)


@dataclass(frozen=True)
class Embedding:
    """Which model embeds the passages (the child loads it on the first material), and for how
    long one material's passages may be embedded."""

    model: str
    profile: str
    device: str | None
    seconds: float

    def embedder(self) -> Embedder | None:
        if self not in _embedders:
            _embedders[self] = load_embedder(self.model, self.profile, self.device)
        return _embedders[self]


_embedders: dict[Embedding, Embedder | None] = {}  # in the child: loaded once


@dataclass(frozen=True)
class Ingested:
    """What the child reports of a processed material: its stats, and a chat's senders."""

    stats: dict[str, float]
    senders: list[tuple[str, int]]


@dataclass(frozen=True)
class Material:
    """One material's file, what to read it as, and where its transcript's JSON goes."""

    file: Path
    kind: str
    ext: str
    person: str
    language: str | None
    limits: Limits
    transcript_file: Path
    title: str = ""  # its name: indexed with each passage
    embedding: Embedding | None = None


class IngestProcess:
    """The worker's ingest child: started on the first material, one material at a time."""

    def __init__(
        self,
        whisper: Whisper,
        seconds_per_material: float,
        cpu_priority: CpuPriority = "idle",
        *,
        extract: Extract = extract,
    ) -> None:
        self.whisper = whisper
        self.seconds_per_material = seconds_per_material
        self.cpu_priority = cpu_priority
        # Sent by name with each material: a module-level function the child can import.
        self.extract = extract
        self._context = spawn_context()
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The child's process id, while there is one."""
        return self._process.pid if self._process is not None else None

    async def transcript(self, material: Material) -> Ingested:
        """Write the material's transcript to `material.transcript_file`; its stats.

        Raises MaterialError with the reason to show, also for a material over the time budget
        and one whose process died (out of memory); what else `extract` raised, as itself."""
        async with self._lock:
            connection = await self._send((self.extract, material))
            try:
                async with asyncio.timeout(self.seconds_per_material):
                    kind, payload = await _receive(connection)
            except TimeoutError:
                await self._end()
                log.warning("ingest of %s stopped: over its time budget", material.file.name)
                raise MaterialError(
                    f"processing took longer than the limit of "
                    f"{duration(self.seconds_per_material)} per material"
                ) from None
            except EOFError:
                code = await self._end()
                log.warning("the ingest process died (exit code %s)", code)
                raise MaterialError(f"processing stopped: its process {_ended(code)}") from None
            except BaseException:  # cancelled: the worker is stopping; the bus redelivers
                await self._end()
                raise
        if kind == "refused":
            reason, senders = payload
            raise MaterialError(reason, senders=senders)
        if kind == "error":
            raise payload
        stats, senders = payload
        return Ingested(dict(stats), senders)

    async def close(self) -> None:
        """End the child (at the worker's shutdown)."""
        async with self._lock:
            await self._end()

    async def _send(self, message: tuple[Extract, Material]) -> Connection:
        """`message` sent to a ready child; one found dead meanwhile is replaced once."""
        for attempt in range(2):
            connection = await self._ready()
            try:
                connection.send(message)
                return connection
            except OSError:  # a broken pipe: the child died between materials
                await self._end()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _ready(self) -> Connection:
        if self._process is not None and self._connection is not None:
            if self._process.is_alive():
                return self._connection
            await self._end()  # died between materials (killed from outside): a new one
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(theirs, os.getpid(), self.whisper, self.cpu_priority),
            name="bishop-ingest",
            daemon=True,
        )
        # On the event loop's thread, never from a thread pool: see die_with_parent.
        with main_module_left_behind():
            process.start()
        theirs.close()  # the child's end is the child's alone: its death reads as EOF here
        self._process, self._connection = process, ours
        try:
            async with asyncio.timeout(STARTUP_SECONDS):
                await _receive(ours)
        except TimeoutError:
            await self._end()
            raise MaterialError(
                f"processing could not start: its process did not answer in "
                f"{duration(STARTUP_SECONDS)}"
            ) from None
        except EOFError:
            code = await self._end()
            raise MaterialError(f"processing could not start: its process {_ended(code)}") from None
        except BaseException:
            await self._end()
            raise
        log.info("ingest process %s started", process.pid)
        return ours

    async def _end(self) -> int | None:
        """Kill the child, if there is one, and forget it; its exit code."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is None:
            return None
        if process.is_alive():
            process.kill()
        # Joined off the event loop: a slow exit must not hold every other consumer up.
        await asyncio.to_thread(process.join, EXIT_SECONDS)
        code = process.exitcode
        with contextlib.suppress(ValueError):  # still running after all: left to the OS
            process.close()
        return code


async def _receive(connection: Connection) -> tuple[str, Any]:
    """The child's next message; EOFError if the child is gone."""
    await _readable(connection)
    return connection.recv()  # small, and whole once readable: the child sends it in one write


async def _readable(connection: Connection) -> None:
    """Wait for the child on the event loop itself: a thread held for a material's whole
    processing would be one fewer in the pool the replies run in."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    try:
        loop.add_reader(connection.fileno(), lambda: ready.done() or ready.set_result(None))
    except NotImplementedError:  # Windows' proactor loop: a thread waits (the child's death,
        await asyncio.to_thread(connection.poll, None)  # a timeout's kill, wakes it up)
        return
    try:
        await ready
    finally:
        loop.remove_reader(connection.fileno())


def _ended(code: int | None) -> str:
    """How the ingest process ended, by its exit code, as the user reads it."""
    if code is not None and code < 0:
        if -code == signal.SIGKILL:
            return "was killed (SIGKILL), most likely for running out of memory"
        try:
            return f"was ended by {signal.Signals(-code).name}"
        except ValueError:
            return f"was ended by signal {-code}"
    return f"exited with code {code}"


# The child.


def _serve(
    connection: Connection, parent: int, whisper: Whisper, cpu_priority: CpuPriority
) -> None:
    """The ingest process: materials from the worker, one at a time, until it hangs up."""
    die_with_parent(parent)
    _step_aside(cpu_priority)
    transcriber = whisper.transcriber()  # whisper itself loads on the first recording
    connection.send(("ready", None))
    while True:
        try:
            extract_, material = connection.recv()
        except EOFError:
            return
        connection.send(_ingest(extract_, material, transcriber))
        _give_memory_back()


def _ingest(extract_: Extract, material: Material, transcriber: Transcriber) -> tuple[str, Any]:
    # What extract unpacks (a chat export's voice notes) goes beside the material, so that what
    # a killed child leaves is removed with the material's folder.
    tempfile.tempdir = str(material.file.parent)
    try:
        transcript = extract_(
            material.file,
            material.kind,
            material.ext,
            material.person,
            material.language,
            transcriber,
            material.limits,
        )
        transcript.title = material.title
        if material.embedding is not None:
            _embed(transcript, material.embedding)
        material.transcript_file.write_bytes(transcript.to_json())
    except MaterialError as exc:
        return "refused", (str(exc), exc.senders)
    except Exception as exc:
        log.exception("ingest of %s failed", material.file.name)
        return "error", _portable(exc)
    return "done", (transcript.stats, transcript.senders)


def _embed(transcript: Transcript, embedding: Embedding) -> None:
    """Vectors for the passages, where the model can make them: without them (a model that
    cannot load, out of memory) the material is still found by its words."""
    try:
        if (embedder := embedding.embedder()) is not None:
            transcript.embed(embedder, embedding.seconds)
    except Exception:
        log.exception("the passages could not be embedded; they are found by their words")
        transcript.vectors, transcript.vector_model, transcript.vector_rows = "", "", 0


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling (its type names the failure to the user);
    otherwise its type and message in a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _step_aside(cpu_priority: CpuPriority) -> None:
    """Let replies go first: a lower CPU priority, and the first to go when memory runs out."""
    if cpu_priority == "idle":
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError):  # Linux only: the lowest nice level elsewhere
            cpu_priority = "low"
    if cpu_priority == "low":
        with contextlib.suppress(OSError, AttributeError):  # no nice on Windows
            os.nice(LOW_PRIORITY_NICENESS)
    with contextlib.suppress(OSError):  # Linux only
        Path("/proc/self/oom_score_adj").write_text(str(OOM_SCORE_ADJ))


def _give_memory_back() -> None:
    """Return the heap a big material took to the system: the child lives on, mostly idle."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL(None).malloc_trim(0)
