"""Training jobs: each run in its own process, so that stopping it stops it within seconds and
gives its memory (and GPU) back. Progress comes back over a queue and goes out as events.

A run's heartbeat is kept in the shared state; a run whose worker died stops beating, and any
ml-text worker then reports it failed, so no avatar stays `training` forever. The run's child
process dies with its worker, however the worker ends (see `child_process.die_with_parent`).

A run outlives the `train_start` handler that began it, so the bus cannot retry what fails in
it: the run itself waits out an outage of storage, state or bus (`_outlasting`).
"""

import asyncio
import contextlib
import functools
import io
import json
import logging
import math
import os
import queue
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from bishop_contracts import events as ev
from bishop_contracts.events import derive_event_id
from bishop_contracts.layout import avatar_prefix_of
from bishop_contracts.topics import Topic
from bishop_infra.bus import Bus
from bishop_infra.faults import dependency_of, is_transient
from bishop_infra.state import State
from bishop_infra.storage import Storage
from bishop_infra.worker import TempRoot

from bishop_text import dataset as datasets
from bishop_text.child_process import die_with_parent, spawn_context
from bishop_text.ingest import Transcript
from bishop_text.settings import TextSettings
from bishop_text.train import ARTIFACT_FILE, Stopped, TrainArgs

log = logging.getLogger("bishop.text")
HEARTBEATS = "train-jobs"
HEARTBEAT_SECONDS = 10.0
DEAD_AFTER_SECONDS = 45.0
STOP_GRACE_SECONDS = 10.0
OUTAGE_FIRST_DELAY = 0.5
OUTAGE_MAX_DELAY = 10.0
T = TypeVar("T")


@dataclass
class Job:
    run_id: uuid.UUID
    avatar_id: uuid.UUID
    stop: Any  # multiprocessing.Event
    task: asyncio.Task[None] | None = None


class TrainingJobs:
    def __init__(
        self,
        settings: TextSettings,
        storage: Storage,
        bus: Bus,
        state: State,
        kaggle_api: Any = None,
        temp: TempRoot | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.bus = bus
        self.state = state
        self.kaggle_api = kaggle_api
        self.temp = temp or TempRoot("ml-text", settings.temp_dir)
        self.running: dict[uuid.UUID, Job] = {}  # by avatar
        self._closing = False
        self._context = spawn_context()

    async def start(self, event: ev.TrainStart) -> None:
        if event.run_id is None:
            event = event.model_copy(update={"run_id": derive_event_id(event.event_id, "run")})
        run_id = event.run_id
        assert run_id is not None
        current = self.running.get(event.avatar_id)
        if current is not None:
            if current.run_id != run_id:
                await self._publish(
                    event,
                    ev.TrainFailed(
                        avatar_id=event.avatar_id,
                        run_id=run_id,
                        reason="another training run of this avatar is in progress",
                    ),
                    "failed",
                )
            return
        if not await self.state.claim(f"train-run:{run_id}", ttl=7 * 86400):
            log.info("train_start for run %s seen before; not run twice", run_id)
            return
        job = Job(run_id, event.avatar_id, self._context.Event())
        self.running[event.avatar_id] = job
        job.task = asyncio.create_task(self._run(event, job))

    async def stop(self, event: ev.TrainStop) -> None:
        job = self.running.get(event.avatar_id)
        if job is not None and (event.run_id is None or event.run_id == job.run_id):
            job.stop.set()

    async def shutdown(self) -> None:
        self._closing = True  # no waiting out outages now: a run left unreported goes stale
        for job in list(self.running.values()):
            job.stop.set()
        await asyncio.gather(
            *(j.task for j in self.running.values() if j.task), return_exceptions=True
        )

    async def _run(self, start: ev.TrainStart, job: Job) -> None:
        ids = {"avatar_id": job.avatar_id, "run_id": job.run_id}
        beating = asyncio.create_task(self._heartbeat(job))
        try:
            try:
                outcome = await self._train(start, job)
            except Stopped:
                outcome = ev.TrainStopped(**ids)
            except Exception as exc:
                log.exception("training run %s failed", job.run_id)
                outcome = ev.TrainFailed(reason=_failure(exc), **ids)
            self.running.pop(job.avatar_id, None)
            # The run beats until its outcome is out: one that cannot be sent goes stale, and
            # the sweep reports the run failed once the bus is back.
            await self._outlasting(functools.partial(self._publish, start, outcome, "outcome"))
            await self._outlasting(
                functools.partial(self.state.delete_field, HEARTBEATS, str(job.run_id))
            )
        except Exception:
            log.exception("the outcome of training run %s could not be reported", job.run_id)
        finally:
            beating.cancel()
            self.running.pop(job.avatar_id, None)

    async def _train(self, start: ev.TrainStart, job: Job) -> ev.Event:
        ids = {"avatar_id": job.avatar_id, "run_id": job.run_id}
        await self._phase(job, "preparing")
        transcripts = []
        for material in start.train_materials:
            if material.type == "basic" and material.transcript_url:
                fetch = functools.partial(self.storage.get_bytes, material.transcript_url)
                transcripts.append(Transcript.from_json(await self._outlasting(fetch, job)))
        if not transcripts:
            return ev.TrainFailed(
                reason="no processed text materials were sent for training", **ids
            )
        try:
            data = datasets.build(transcripts)
        except ValueError as exc:
            return ev.TrainFailed(reason=str(exc), **ids)
        prefix = avatar_prefix_of(start.train_materials[0].url)
        store = functools.partial(
            self.storage.put_bytes,
            f"{prefix}datasets/{data.version}.jsonl",
            data.to_jsonl(),
            "application/jsonl",
        )
        await self._outlasting(store, job)
        with self.temp.folder("bishop-train-") as tmp:
            dataset_path = Path(tmp) / "dataset.jsonl"
            dataset_path.write_bytes(data.to_jsonl())
            args = self._args(str(dataset_path), str(Path(tmp) / "out"))
            await self._phase(job, "loading")
            if self.settings.kaggle:
                result = await self._on_kaggle(start, job, args, Path(tmp))
            else:
                result = await self._in_process(start, job, args, Path(tmp))
            if result is None:
                return ev.TrainStopped(**ids)
            adapter_key = f"{prefix}adapters/{job.run_id}.tar"
            archive = await asyncio.to_thread(_tar, Path(args.output_dir))
            store = functools.partial(
                self.storage.put_bytes, adapter_key, archive, "application/x-tar"
            )
            await self._outlasting(store, job)
        return ev.TrainFinished(
            adapter_url=adapter_key,
            dataset_version=data.version,
            config={**result["config"], "kind": result["kind"]},
            metrics={k: v for k, v in result["metrics"].items() if math.isfinite(v)},
            **ids,
        )

    def _args(self, dataset: str, output_dir: str) -> TrainArgs:
        s = self.settings
        return TrainArgs(
            dataset=dataset,
            output_dir=output_dir,
            base_model=s.resolved_base_model if s.profile != "demo" else "",
            quantize_4bit=s.profile == "gpu",
            gradient_checkpointing=s.profile == "gpu",
            optimizer="paged_adamw_8bit" if s.profile == "gpu" else "adamw_torch",
            lora_r=s.lora_r,
            lora_alpha=s.lora_alpha,
            epochs=s.train_epochs,
            max_steps=s.train_max_steps,
            learning_rate=s.learning_rate,
            batch_size=s.batch_size,
            max_length=s.max_length,
            device=s.device,
        )

    async def _in_process(
        self, start: ev.TrainStart, job: Job, args: TrainArgs, work: Path
    ) -> dict[str, Any] | None:
        """Run training in a child process; its description, or None if it was stopped."""
        messages = self._context.Queue()
        child = self._context.Process(
            target=_child,
            args=(asdict(args), messages, job.stop, os.getpid(), str(work)),
            daemon=True,
        )
        # Started on the event loop's thread, never from a thread pool: the child's parent-death
        # signal fires when the *thread* that started it ends, and pool threads come and go.
        child.start()
        last_report = 0.0
        logged: list[dict[str, float]] = []  # the steps since the last report
        stop_asked: float | None = None
        try:
            while True:
                try:
                    kind, payload = await asyncio.to_thread(messages.get, True, 0.5)
                except queue.Empty:
                    if job.stop.is_set() and stop_asked is None:
                        stop_asked = time.monotonic()
                    if (
                        stop_asked is not None
                        and time.monotonic() - stop_asked > STOP_GRACE_SECONDS
                    ):
                        child.kill()
                        return None
                    if not child.is_alive():
                        raise RuntimeError(
                            f"the training process died (exit code {child.exitcode})"
                        ) from None
                    continue
                if kind == "progress":
                    now = time.monotonic()
                    logged.append(payload)
                    if (
                        now - last_report >= self.settings.progress_every_seconds
                        or payload["step"] == payload["total_steps"]
                    ):
                        last_report = now
                        await self._progress(start, job, payload, logged[-1000:])
                        logged = []
                elif kind == "done":
                    return payload
                elif kind == "stopped":
                    return None
                else:
                    raise RuntimeError(payload)
        finally:
            # Joined off the event loop: a slow exit must not hold every other consumer up.
            await asyncio.to_thread(child.join, STOP_GRACE_SECONDS)
            if child.is_alive():
                child.kill()

    async def _on_kaggle(
        self, start: ev.TrainStart, job: Job, args: TrainArgs, work: Path
    ) -> dict[str, Any] | None:
        """Train on Kaggle; the artifact's description (now in `args.output_dir`), or None."""
        from bishop_text.kaggle import KaggleTrainer, client

        api = self.kaggle_api or await asyncio.to_thread(client)
        username = self.settings.kaggle_username or os.environ.get("KAGGLE_USERNAME", "")
        trainer = KaggleTrainer(api, username, poll_seconds=self.settings.kaggle_poll_seconds)
        loop = asyncio.get_running_loop()

        def report(payload: dict[str, float]) -> None:
            asyncio.run_coroutine_threadsafe(self._progress(start, job, payload), loop).result()

        try:
            folder = await asyncio.to_thread(
                trainer.run, str(job.run_id)[:8], args, work, report, job.stop.is_set
            )
        except Stopped:
            return None
        shutil.copytree(folder, args.output_dir)
        return json.loads((folder / ARTIFACT_FILE).read_text())

    async def _progress(
        self,
        start: ev.TrainStart,
        job: Job,
        payload: dict[str, float],
        logged: list[dict[str, float]] | None = None,
    ) -> None:
        clean = _finite(payload)
        event = ev.TrainProgress(
            avatar_id=job.avatar_id,
            run_id=job.run_id,
            step=int(payload["step"]),
            total_steps=int(payload["total_steps"]),
            loss=clean["loss"],
            eval_loss=clean["eval_loss"],
            tokens_per_second=clean["tokens_per_second"],
            eta_seconds=clean["eta_seconds"],
            logged=[_logged_loss(p) for p in logged or []],
        )
        try:
            await self.bus.publish(Topic.TRAIN_STATUS, event)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Progress is a glimpse, not a record: the next report brings it up to date.
            log.warning("progress of run %s not sent: %s", job.run_id, _reason(exc))

    async def _phase(self, job: Job, phase: Literal["preparing", "loading"]) -> None:
        """Tell the user what happens before the first step (a glimpse, like progress)."""
        event = ev.TrainProgress(
            avatar_id=job.avatar_id, run_id=job.run_id, step=0, total_steps=0, phase=phase
        )
        try:
            await self.bus.publish(Topic.TRAIN_STATUS, event)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("phase of run %s not sent: %s", job.run_id, _reason(exc))

    async def _heartbeat(self, job: Job) -> None:
        record = json.dumps({"avatar_id": str(job.avatar_id), "run_id": str(job.run_id)})
        while True:
            try:
                await self.state.put_field(
                    HEARTBEATS, str(job.run_id), f"{time.time()}|{record}", ttl=7 * 86400
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("heartbeat of run %s not written: %s", job.run_id, _reason(exc))
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _outlasting(self, call: Callable[[], Awaitable[T]], job: Job | None = None) -> T:
        """`call()`, retried with backoff while it fails with an outage, for as long as the bus
        would retry a handler (`outage_retry_minutes`) and the worker is not shutting down; a
        stop asked meanwhile ends the wait."""
        delay, began = OUTAGE_FIRST_DELAY, time.monotonic()
        while True:
            try:
                return await call()
            except Exception as exc:
                waited = time.monotonic() - began
                limit = self.settings.outage_retry_minutes * 60
                if not is_transient(exc) or waited >= limit or self._closing:
                    raise
                log.warning("training: outage (%s), retrying in %.1fs", _reason(exc), delay)
            if job is not None and job.stop.is_set():
                raise Stopped
            await asyncio.sleep(delay)
            delay = min(delay * 2, OUTAGE_MAX_DELAY)

    async def sweep(self) -> None:
        """Report runs whose worker stopped beating (it crashed or was killed mid-run)."""
        for run_id, value in (await self.state.get_fields(HEARTBEATS)).items():
            beat, _, record = value.partition("|")
            if time.time() - float(beat) < DEAD_AFTER_SECONDS:
                continue
            if not await self.state.claim(f"train-orphan:{run_id}", ttl=86400):
                continue
            info = json.loads(record)
            await self.bus.publish(
                Topic.TRAIN_STATUS,
                ev.TrainFailed(
                    event_id=derive_event_id(uuid.UUID(run_id), "orphaned"),
                    avatar_id=info["avatar_id"],
                    run_id=info["run_id"],
                    reason="the training worker stopped during the run; start training again",
                ),
            )
            await self.state.delete_field(HEARTBEATS, run_id)

    async def sweep_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.sweep()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _publish(self, start: ev.TrainStart, event: ev.Event, label: str) -> None:
        await self.bus.publish(
            Topic.TRAIN_STATUS,
            event.model_copy(update={"event_id": derive_event_id(start.event_id, label)}),
        )


def _child(args: dict[str, Any], messages: Any, stop: Any, parent: int, work: str) -> None:
    """The training process."""
    die_with_parent(parent)
    # The trainer's own scratch goes into the run's folder, inside the worker's temp root, so
    # what a killed run leaves behind is swept with the root.
    tempfile.tempdir = work
    from bishop_text.train import Stopped, main

    try:
        result = main(
            TrainArgs(**args),
            progress=lambda p: messages.put(("progress", p)),
            should_stop=stop.is_set,
        )
        messages.put(("done", result))
    except Stopped:
        messages.put(("stopped", None))
    except Exception as exc:
        messages.put(("error", _reason(exc)))


def _finite(payload: dict[str, float]) -> dict[str, float | None]:
    """The payload with NaN and infinities (a value not logged at that step) as None."""
    return {
        k: (v if isinstance(v, float | int) and math.isfinite(v) else None)
        for k, v in payload.items()
    }


def _logged_loss(payload: dict[str, float]) -> ev.LoggedLoss:
    clean = _finite(payload)
    return ev.LoggedLoss(
        step=int(payload["step"]), loss=clean["loss"], eval_loss=clean["eval_loss"]
    )


def _failure(exc: BaseException) -> str:
    """The reason a run failed, as the user reads it."""
    dependency = dependency_of(exc)
    if dependency is not None:
        return f"the {dependency} stayed unavailable: {_reason(exc)}"[:500]
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()
