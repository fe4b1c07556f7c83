"""The ml-text worker process: materials to transcripts, training runs, and replies.

Four consumers, so that a long transcription never delays a chat reply: materials (processed
in a child process of their own, see `ingest.isolated`), training (whose runs go to child
processes), replies with health checks (several at once: the generation scheduler batches
them), and stops (read while replies are generated). Each skips the events it has handled
before (by event id, in the shared state). An outage of storage, state or bus is raised for the
bus to retry; only what is the event's own fault fails the material or reply.
"""

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from bishop_contracts import events as ev
from bishop_contracts.events import derive_event_id
from bishop_contracts.layout import avatar_prefix_of
from bishop_contracts.topics import Topic
from bishop_infra.faults import is_transient
from bishop_infra.handled import HandledEvents
from bishop_infra.state import state_from_url
from bishop_infra.storage import ObjectNotFound, storage_from_url
from bishop_infra.worker import TempRoot, health_answer, make_bus, run_process, serve_forever

from bishop_text.chat_format import Turn
from bishop_text.generate import Engine, Version, conversation
from bishop_text.ingest import MaterialError, Transcript, extension, title
from bishop_text.ingest.isolated import Embedding, Ingested, IngestProcess, Material, Whisper
from bishop_text.ingest.limits import Limits
from bishop_text.jobs import TrainingJobs
from bishop_text.llm_server import LlmRefused, LlmServer
from bishop_text.retrieval import Passage
from bishop_text.retrieval.embeddings import Embedder, load_embedder
from bishop_text.retrieval.hybrid import PassageIndex, passage_index
from bishop_text.retrieval.rerank import Reranker, load_reranker
from bishop_text.scheduler import ReplyCancelled
from bishop_text.settings import TextSettings

WORKER = "ml-text"
INDEX_CACHE_SIZE = 64
TRANSCRIPT_FILE = "transcript.json"
log = logging.getLogger("bishop.text")


class NotAnOutage(Exception):
    """What a model or a file's decoder raised (its cause): the event's own fault, even as an
    OSError, which `is_transient` would take for an outage and have retried for minutes."""


def _senders(found: list[tuple[str, int]]) -> list[ev.Sender]:
    """A chat export's senders as the event carries them (names cut to the contract's length)."""
    return [ev.Sender(name=name[:255], messages=count) for name, count in found[:50]]


def _ignored_material(event: ev.Event) -> bool:
    return not (isinstance(event, ev.MaterialUploaded) and event.type == "basic")


class TextWorker:
    def __init__(self, settings: TextSettings, group: str = WORKER) -> None:
        self.settings = settings
        self.bus = make_bus(settings, WORKER)
        self.storage = storage_from_url(settings.resolved_storage_url)
        self.state = state_from_url(settings.state_url)
        self.engine = Engine(settings)
        # Replies from an OpenAI-compatible server (vLLM) instead of the engine, when one is set.
        self.llm = LlmServer(settings) if settings.llm_url else None
        self.temp = TempRoot(WORKER, settings.temp_dir)
        self.jobs = TrainingJobs(settings, self.storage, self.bus, self.state, temp=self.temp)
        self.ingest = IngestProcess(
            self._whisper(), settings.ingest_seconds_per_material, settings.ingest_cpu_priority
        )
        # One index per set of transcripts: a changed set is a new key; old ones age out.
        self._indexes: OrderedDict[tuple[str, ...], PassageIndex] = OrderedDict()
        self._retrieval_models: tuple[Embedder | None, Reranker | None] | None = None
        self._retrieval_loading = asyncio.Lock()
        materials = HandledEvents(self.state, f"{group}-materials")
        self.bus.subscribe(
            f"{group}-materials",
            [Topic.MATERIALS],
            materials.once(self.on_material, skip=_ignored_material),
        )
        training = HandledEvents(self.state, f"{group}-train")
        self.bus.subscribe(f"{group}-train", [Topic.LLM_TRAIN], training.once(self.on_train))
        replies = HandledEvents(self.state, group)
        # Replies are handled side by side: the generation scheduler batches those in flight.
        self.bus.subscribe(
            group,
            [Topic.LLM_INFERENCE, Topic.HEALTH_CHECK_TEXT],
            replies.once(self.on_reply, skip=lambda e: isinstance(e, ev.HealthCheck)),
            concurrency=settings.max_batch_size,
        )
        # Each reply in flight waits for its pieces on a thread of its own.
        self._reply_threads = ThreadPoolExecutor(
            settings.max_batch_size, thread_name_prefix="reply"
        )
        # Its own group, so that a stop is read while the replies' consumer is busy generating.
        self.bus.subscribe(f"{group}-cancel", [Topic.LLM_CANCEL], self.on_cancel)

    def _model_device(self) -> str | None:
        """For sentence-transformers models: None lets them take a GPU where there is one."""
        return None if self.settings.device == "auto" else self.settings.device

    def _whisper(self) -> Whisper:
        s = self.settings
        device = "cpu" if s.device == "auto" else s.device
        if s.profile == "demo" and not s.whisper_model:
            return Whisper("", device, demo_folder=str(s.resolved_cache_dir))
        return Whisper(s.resolved_whisper_model, device)

    # materials

    async def on_material(self, event: ev.Event) -> None:
        if not isinstance(event, ev.MaterialUploaded) or event.type != "basic":
            return
        ids = {"avatar_id": event.avatar_id, "material_id": event.material_id}
        await self.bus.publish(
            Topic.MATERIAL_STATUS,
            ev.MaterialProcessing(event_id=derive_event_id(event.event_id, "processing"), **ids),
        )
        with self.temp.folder("bishop-material-") as tmp:
            folder = Path(tmp)
            try:
                ingested = await self._transcript(event, folder)
            except (MaterialError, ObjectNotFound) as exc:
                reason = (
                    "the file is missing from storage"
                    if isinstance(exc, ObjectNotFound)
                    else str(exc)
                )
                senders = _senders(exc.senders) if isinstance(exc, MaterialError) else []
                outcome: ev.Event = ev.MaterialFailed(reason=reason, senders=senders, **ids)
            except Exception as exc:
                if is_transient(exc) and not isinstance(exc, NotAnOutage):
                    raise  # storage down: the bus retries the event once it is back
                log.exception("material %s could not be processed", event.material_id)
                cause = exc.__cause__ if isinstance(exc, NotAnOutage) else exc
                outcome = ev.MaterialFailed(
                    reason=f"processing failed: {type(cause).__name__}", **ids
                )
            else:
                key = f"{avatar_prefix_of(event.url)}transcripts/{event.material_id}.json"
                written = folder / TRANSCRIPT_FILE
                with written.open("rb") as body:
                    await self.storage.put_stream(
                        key, body, written.stat().st_size, "application/json"
                    )
                outcome = ev.MaterialProcessed(
                    transcript_url=key,
                    stats=ingested.stats,
                    senders=_senders(ingested.senders),
                    **ids,
                )
        await self.bus.publish(
            Topic.MATERIAL_STATUS,
            outcome.model_copy(update={"event_id": derive_event_id(event.event_id, "outcome")}),
        )

    async def _transcript(self, event: ev.MaterialUploaded, folder: Path) -> Ingested:
        """The material's transcript, as TRANSCRIPT_FILE in `folder`; its stats."""
        path = folder / f"material{PurePosixPath(event.url).suffix}"
        # A chunk at a time: the worker never holds an upload whole (200 MiB is allowed).
        with path.open("wb") as out:
            async for chunk in self.storage.read_stream(event.url):
                await asyncio.to_thread(out.write, chunk)
        material = Material(
            file=path,
            kind=event.kind,
            ext=extension(event.url),
            person=event.person or "",
            language=event.language,
            limits=Limits.from_settings(self.settings),
            transcript_file=folder / TRANSCRIPT_FILE,
            title=title(event.filename),
            embedding=Embedding(
                self.settings.embedding_model,
                self.settings.profile,
                self._model_device(),
                self.settings.embedding_seconds_per_material,
            ),
        )
        try:
            return await self.ingest.transcript(material)
        except MaterialError:
            raise
        except Exception as exc:
            raise NotAnOutage(f"{type(exc).__name__}: {exc}") from exc

    # training

    async def on_train(self, event: ev.Event) -> None:
        if isinstance(event, ev.TrainStart):
            await self.jobs.start(event)
        elif isinstance(event, ev.TrainStop):
            await self.jobs.stop(event)

    # replies

    async def on_reply(self, event: ev.Event) -> None:
        if isinstance(event, ev.HealthCheck):
            details = {"profile": self.settings.profile, "training": str(len(self.jobs.running))}
            await self.bus.publish(Topic.WORKER_HEALTH, health_answer(WORKER, event, **details))
        elif isinstance(event, ev.InferenceResponse):
            try:
                await self.reply(event)
            except ReplyCancelled:
                log.info("reply %s stopped by its user", event.message_id)
            except Exception as exc:
                if is_transient(exc) and not isinstance(exc, NotAnOutage):
                    raise  # storage or bus down: the bus retries the event once it is back
                log.exception("reply %s failed", event.message_id)
                cause = exc.__cause__ if isinstance(exc, NotAnOutage) else exc
                await self.bus.publish(
                    Topic.SAVE_RESPONSE,
                    ev.ResponseFailed(
                        event_id=derive_event_id(event.event_id, "failed"),
                        message_id=event.message_id,
                        reason=f"generation failed: {type(cause).__name__}: {cause}"[:500],
                    ),
                )

    async def on_cancel(self, event: ev.Event) -> None:
        # A stop needs no bookkeeping: cancelling twice, or a reply no longer generated, is a no-op.
        cancel = getattr(self.llm or self.engine, "cancel", None)
        if isinstance(event, ev.ResponseCancel) and cancel is not None:
            cancel(event.message_id)

    async def reply(self, event: ev.InferenceResponse) -> None:
        if event.adapter_url:
            folder = self.engine.version_folder(event.adapter_url)
            if not folder.exists():
                self.engine.unpack(await self.storage.get_bytes(event.adapter_url), folder)
        version = self.engine.version(event.adapter_url)
        passages = await self._passages(event)
        turns = conversation(event, passages)
        loop = asyncio.get_running_loop()
        index = 0

        def on_piece(piece: str) -> None:
            nonlocal index
            delta = ev.ResponseDelta(
                event_id=derive_event_id(event.event_id, f"delta:{index}"),
                message_id=event.message_id,
                index=index,
                text=piece,
            )
            index += 1
            # Wait for each publish, so deltas stay in order and generation feels backpressure.
            asyncio.run_coroutine_threadsafe(
                self.bus.publish(Topic.SAVE_RESPONSE, delta), loop
            ).result()

        if self.llm is not None:
            text = await self._generate_remote(event, version, turns, on_piece)
        else:
            text = await loop.run_in_executor(
                self._reply_threads, self._generate, version, turns, on_piece, event.message_id
            )
        await self.bus.publish(
            Topic.SAVE_RESPONSE,
            ev.SaveResponse(
                event_id=derive_event_id(event.event_id, "save_response"),
                message_id=event.message_id,
                generated_text=text,
                passage_ids=[p.id for p in passages],
                sources=[
                    ev.Source(material_id=p.material_id, passage_id=p.id, text=p.text, rank=rank)
                    for rank, p in enumerate(passages, start=1)
                ],
                adapter_version_id=event.adapter_version_id,
            ),
        )

    def _generate(
        self,
        version: Version,
        turns: list[Turn],
        on_piece: Callable[[str], None],
        reply_id: uuid.UUID,
    ) -> str:
        """Blocking: the engine's answer; what the model raises comes as NotAnOutage, what
        publishing a piece raises (the bus is down) as itself."""
        published: list[Exception] = []

        def publish(piece: str) -> None:
            try:
                on_piece(piece)
            except Exception as exc:
                published.append(exc)
                raise

        try:
            return self.engine.generate(version, turns, publish, reply_id)
        except ReplyCancelled:
            raise
        except Exception as exc:
            if published:
                raise
            raise NotAnOutage(f"{type(exc).__name__}: {exc}") from exc

    async def _generate_remote(
        self,
        event: ev.InferenceResponse,
        version: Version,
        turns: list[Turn],
        on_piece: Callable[[str], None],
    ) -> str:
        """The LLM server's answer; what it refuses comes as NotAnOutage, an outage of it
        (LlmUnavailable) and what publishing a piece raises as themselves."""
        assert self.llm is not None

        async def publish(piece: str) -> None:
            await asyncio.to_thread(on_piece, piece)

        try:
            return await self.llm.generate(
                version,
                turns,
                publish,
                version_id=event.adapter_version_id,
                reply_id=event.message_id,
            )
        except LlmRefused as exc:
            raise NotAnOutage(str(exc)) from exc

    async def _passages(self, event: ev.InferenceResponse) -> list[Passage]:
        """The passages the reply is built on, best first (searched off the event loop: the
        question's embedding is CPU work)."""
        index = await self._index(event.transcript_urls)
        previous = next((t.text for t in reversed(event.history) if t.role == "user"), "")
        return await asyncio.to_thread(
            index.search,
            event.text,
            self.settings.retrieved_passages,
            previous=previous,
            person=event.persona.name if event.persona else "",
        )

    async def _index(self, transcript_urls: list[str]) -> PassageIndex:
        key = tuple(sorted(transcript_urls))
        if key not in self._indexes:
            transcripts = []
            for url in key:
                try:
                    transcript = Transcript.from_json(await self.storage.get_bytes(url))
                except ObjectNotFound:
                    continue  # the material was deleted meanwhile
                transcripts.append((PurePosixPath(url).stem, transcript))
            embedder, reranker = await self._retrieval()
            self._indexes[key] = await asyncio.to_thread(
                passage_index, transcripts, embedder, reranker
            )
            while len(self._indexes) > INDEX_CACHE_SIZE:
                self._indexes.popitem(last=False)
        self._indexes.move_to_end(key)
        return self._indexes[key]

    async def _retrieval(self) -> tuple[Embedder | None, Reranker | None]:
        """The embedding model and reranker, loaded on the first reply that needs them."""
        async with self._retrieval_loading:  # the first replies at once load them once
            if self._retrieval_models is None:
                s = self.settings
                self._retrieval_models = await asyncio.to_thread(
                    lambda: (
                        load_embedder(s.embedding_model, s.profile, self._model_device()),
                        load_reranker(s.reranker_model, s.profile, self._model_device()),
                    )
                )
        return self._retrieval_models

    async def run(self, *, own_process: bool = False) -> None:
        """Serve until cancelled; `own_process`: this worker is the whole process (`main`)."""
        if own_process:
            self.temp.use_for_process()
        # Beside serving, not before it: what dead workers left is no reason to wait.
        sweeping = asyncio.create_task(asyncio.to_thread(self.temp.sweep))
        # The retrieval models load (or download) now, not on the first replies' time.
        loading = asyncio.create_task(self._retrieval())
        sweeper: asyncio.Task[None] | None = None
        try:
            await self.storage.ensure_ready()
            sweeper = asyncio.create_task(self.jobs.sweep_forever())
            await serve_forever(self.bus, WORKER)
        finally:
            if sweeper is not None:
                sweeper.cancel()
            await self.jobs.shutdown()
            await self.ingest.close()
            loading.cancel()
            await asyncio.gather(sweeping, loading, return_exceptions=True)
            await asyncio.to_thread(self.temp.remove)


async def run(
    settings: TextSettings | None = None, group: str = WORKER, *, own_process: bool = False
) -> None:
    await TextWorker(settings or TextSettings(), group).run(own_process=own_process)


def main() -> None:
    run_process(lambda: run(own_process=True))
