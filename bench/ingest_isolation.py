"""ml-text: an unrelated user's reply latency while hostile materials are processed, with ingest
in its own process (now) and in a thread of the worker (before); and what the worst materials
cost.

    uv run python -m bench.ingest_isolation
    uv run python -m bench.ingest_isolation --replies 20 --big-mib 200

Replies: the demo profile's model, `--tokens` tokens each (a fixed length), through
`TextWorker.reply` on the worker's own event loop, one after another; latency is the whole
reply.

- Rounds: idle (no material in flight), then busy: materials go through
  `TextWorker.on_material` back to back (five 5 MB one-line texts of the shapes cleaning was
  once quadratic on, a Telegram zip bomb, a DOCX bomb) while the replies are timed. "process"
  is the ingest child; "thread" runs the same `extract` with `asyncio.to_thread` in the worker's
  process, as before the child. Alternated, `--rounds` times.
- Pairs, per CPU priority of the child: the child runs ten minutes of pure-Python work; each
  pair is one reply with the child paused (SIGSTOP: for the worker, the same as idle) and one
  with it running, a moment apart, so that the drifting load of the machine's other users
  weighs on both alike; the median of the pairs' ratios.

Big materials: the child's peak RSS (VmHWM) and the worker's (reset before each), and the time
to the material's outcome.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from bishop_contracts import events as ev
from bishop_text.ingest import extract
from bishop_text.ingest.isolated import Material
from bishop_text.ingest.media import Transcriber
from bishop_text.settings import TextSettings
from bishop_text.worker import TextWorker

from tests.text import hostile

MiB = 1 << 20
PRIORITIES = {"normal": "nice 0", "low": "nice 19", "idle": "SCHED_IDLE"}


class InThread:
    """Ingest as it was: `extract` in a thread of the worker's own process."""

    def __init__(self) -> None:
        self.transcriber = Transcriber("never-loaded")

    async def transcript(self, material: Material) -> dict[str, float]:
        transcript = await asyncio.to_thread(
            extract,
            material.file,
            material.kind,
            material.ext,
            material.person,
            material.language,
            self.transcriber,
            material.limits,
        )
        await asyncio.to_thread(material.transcript_file.write_bytes, transcript.to_json())
        return transcript.stats

    async def close(self) -> None:
        pass


def peak_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int | str = "self") -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS


class Materials:
    """Hostile uploads in one avatar's storage, and the outcomes they got."""

    def __init__(self, worker: TextWorker, root: Path) -> None:
        self.worker = worker
        self.root = root
        self.prefix = f"users/{uuid.uuid4()}/avatars/{uuid.uuid4()}/"
        self.outcomes: list[ev.Event] = []
        original = worker.bus.publish

        async def publish(topic: Any, event: ev.Event) -> None:
            if isinstance(event, ev.MaterialProcessed | ev.MaterialFailed):
                self.outcomes.append(event)
            await original(topic, event)

        worker.bus.publish = publish  # type: ignore[method-assign]

    async def upload(self, path: Path, kind: str) -> ev.MaterialUploaded:
        return await hostile.upload(self.worker.storage, self.prefix, path, kind)

    async def hostile(self, text_bytes: int) -> list[tuple[str, ev.MaterialUploaded]]:
        made = []
        for i, shape in enumerate(hostile.RUN_ON_LINES):
            path = hostile.run_on_text(self.root / f"run-on-{i}.txt", shape, text_bytes)
            made.append((shape, await self.upload(path, "text")))
        bomb = hostile.telegram_zip_bomb(self.root / "bomb.zip")
        made.append(("telegram zip bomb", await self.upload(bomb, "archive")))
        docx = hostile.docx(self.root / "bomb.docx", 100_000)
        made.append(("DOCX bomb", await self.upload(docx, "document")))
        return made

    async def outcome(self, upload: ev.MaterialUploaded) -> tuple[float, str]:
        """Process it; seconds to its outcome, and the outcome."""
        start = time.perf_counter()
        await self.worker.on_material(upload)
        seconds = time.perf_counter() - start
        event = next(e for e in self.outcomes if e.material_id == upload.material_id)
        if isinstance(event, ev.MaterialFailed):
            return seconds, f"failed: {event.reason}"
        return seconds, "processed"


async def reply_seconds(worker: TextWorker) -> float:
    request = ev.InferenceResponse(
        message_id=uuid.uuid4(), text="Что такое импульс?", persona=ev.Persona(name="Борис")
    )
    start = time.perf_counter()
    await worker.reply(request)
    return time.perf_counter() - start


async def busy_replies(
    worker: TextWorker, uploads: list[ev.MaterialUploaded], count: int, materials: Materials
) -> list[float]:
    """`count` reply latencies, each while materials were being processed."""
    done = False

    async def feed() -> None:
        # Stopped between materials, never cancelled: a thread running `extract` cannot be,
        # and would go on into the next round's idle replies.
        while not done:
            for upload in uploads:
                await materials.outcome(upload.model_copy(update={"event_id": uuid.uuid4()}))
                if done:
                    return

    feeding = asyncio.create_task(feed())
    await asyncio.sleep(0.5)  # the first material under way
    samples: list[float] = []
    try:
        while len(samples) < count and not feeding.done():
            samples.append(await reply_seconds(worker))
    finally:
        done = True
        await feeding
    return samples


async def latency(
    worker: TextWorker,
    materials: Materials,
    uploads: list[ev.MaterialUploaded],
    n: int,
    rounds: int,
) -> dict[str, list[float]]:
    for _ in range(3):
        await reply_seconds(worker)  # load the model, warm up
    results: dict[str, list[float]] = {"idle": [], "process": [], "thread": []}
    child = worker.ingest
    # Alternated: this machine's speed drifts with its other users.
    for _ in range(rounds):
        results["idle"] += [await reply_seconds(worker) for _ in range(n)]
        worker.ingest = child
        results["process"] += await busy_replies(worker, uploads, n, materials)
        worker.ingest = InThread()  # type: ignore[assignment]
        results["thread"] += await busy_replies(worker, uploads, n, materials)
    worker.ingest = child
    return results


async def paired(worker: TextWorker, materials: Materials, priority: str, n: int) -> list[float]:
    """Busy over idle reply latency of `n` pairs, the child at `priority` spinning."""
    worker.ingest.cpu_priority = priority  # type: ignore[assignment]
    await worker.ingest.close()
    worker.ingest.extract = hostile.extract_that_spins
    upload = await materials.upload(materials.root / "run-on-0.txt", "text")
    spinning = asyncio.create_task(worker.on_material(upload))
    try:
        for _ in range(600):  # the child started (a minute at most), then spinning
            if worker.ingest.pid is not None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        child = psutil.Process(worker.ingest.pid)
        ratios = []
        for _ in range(n):
            child.suspend()
            try:
                idle = await reply_seconds(worker)
            finally:
                child.resume()
            ratios.append(await reply_seconds(worker) / idle)
    finally:
        spinning.cancel()
        await asyncio.gather(spinning, return_exceptions=True)
        worker.ingest.extract = extract
        worker.ingest.cpu_priority = "idle"
    return ratios


async def big_material(
    worker: TextWorker, materials: Materials, path: Path, kind: str, budget: float
) -> dict[str, Any]:
    upload = await materials.upload(path, kind)
    await worker.ingest.close()
    worker.ingest.seconds_per_material = budget
    reset_peak()
    before = peak_mib()
    seconds, outcome = await materials.outcome(upload)
    pid = worker.ingest.pid
    return {
        "seconds": seconds,
        "outcome": outcome,
        "child_peak_mib": peak_mib(pid) if pid else float("nan"),
        "worker_peak_added_mib": peak_mib() - before,
    }


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = uuid.uuid4().hex[:8]
        settings = TextSettings(
            _env_file=None,
            bus_url=f"memory://bench-{run}",
            state_url=f"memory://bench-{run}",
            storage_url=f"file://{root}/objects",
            temp_dir=root / "tmp",
            profile="demo",
            cache_dir=root / "cache",
            max_new_tokens=args.tokens,
            min_new_tokens=args.tokens,
            temperature=0.0,
        )
        worker = TextWorker(settings, group=f"bench-{run}")
        await worker.storage.ensure_ready()
        materials = Materials(worker, root)
        made = await materials.hostile(5 * 10**6)
        try:
            print("each hostile material, in the ingest child:")
            for name, upload in made:
                seconds, outcome = await materials.outcome(upload)
                print(f"  {name}: {seconds:.2f} s, {outcome[:90]}")

            uploads = [u for _, u in made]
            results = await latency(worker, materials, uploads, args.replies, args.rounds)
            idle = statistics.median(results["idle"])
            print(f"reply latency ({args.tokens} tokens), median of {len(results['idle'])}:")
            for mode, samples in results.items():
                median = statistics.median(samples)
                p90 = statistics.quantiles(samples, n=10)[-1]
                print(
                    f"  {mode}: median {median * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
                    f"{median / idle:.2f}x idle"
                )

            print(f"reply latency in pairs, busy/idle, median of {args.pairs} pairs a round:")
            ratios: dict[str, list[list[float]]] = {"normal": [], "low": [], "idle": []}
            for _ in range(args.rounds):
                for priority, found in ratios.items():
                    found.append(await paired(worker, materials, priority, args.pairs))
            for priority, found in ratios.items():
                rounds = ", ".join(f"{statistics.median(r):.2f}x" for r in found)
                overall = statistics.median([r for pairs in found for r in pairs])
                print(f"  child at {PRIORITIES[priority]}: {overall:.2f}x (rounds: {rounds})")

            if not args.big_mib:
                return
            print("big materials (ingest child restarted before each):")
            whitespace = hostile.whitespace_export(root / "whitespace.zip")
            big = hostile.run_on_text(root / "big.txt", "run-on words", args.big_mib * MiB)
            rows = [
                ("608 MiB of whitespace as result.json, zipped", whitespace, "archive", {}),
                (f"{args.big_mib} MiB one-line text, default limits", big, "text", {}),
                (
                    f"{args.big_mib} MiB one-line text, text limit raised to 256 MiB",
                    big,
                    "text",
                    {"ingest_max_text_mib": 256.0},
                ),
            ]
            for name, path, kind, overrides in rows:
                for key, value in overrides.items():
                    setattr(worker.settings, key, value)
                size = path.stat().st_size / MiB
                r = await big_material(worker, materials, path, kind, args.budget)
                print(
                    f"  {name} ({size:.1f} MiB file): {r['seconds']:.1f} s, "
                    f"child peak {r['child_peak_mib']:.0f} MiB, "
                    f"worker peak +{r['worker_peak_added_mib']:.0f} MiB, {r['outcome'][:100]}"
                )
        finally:
            await worker.ingest.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=6, help="replies per round, per mode")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=10, help="pairs per priority, per round")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--big-mib", type=int, default=200, help="0: no big materials")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per big material")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
