"""What the backend does with the workers' events. Each handler runs at most once per event id:
the id is recorded in the same transaction as the handler's changes. Events the handler emits
get ids derived from the cause, so a redelivered cause re-emits the same events, which their
consumers ignore as duplicates."""

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from bishop_contracts import events as ev
from bishop_contracts.events import derive_event_id
from bishop_contracts.layout import avatar_prefix_of
from bishop_contracts.text import clean_generated
from bishop_contracts.topics import Topic
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.infra import Infra
from bishop_backend.keys import avatar_prefix, dub_key
from bishop_backend.models import (
    AdapterVersion,
    Avatar,
    AvatarStatus,
    Chat,
    Material,
    MaterialStatus,
    Message,
    MessageRole,
    ProcessedEvent,
    ReplyStatus,
    RunStatus,
    TrainingRun,
)
from bishop_backend.models.common import utcnow
from bishop_backend.models.training import ACTIVE_RUN_STATUSES
from bishop_backend.services import replies
from bishop_backend.services.chats import delete_dub, load_reply, voice_samples
from bishop_backend.services.health import remember_worker
from bishop_backend.services.outbox import emit
from bishop_backend.services.sweeper import fail_if
from bishop_backend.services.training import PHASE_TTL, end_run, phase_key

log = logging.getLogger("bishop.orchestrator")

BACKEND_TOPICS = (
    Topic.SAVE_RESPONSE,
    Topic.SAVE_RESPONSE_DUB,
    Topic.TRAIN_STATUS,
    Topic.MATERIAL_STATUS,
    Topic.WORKER_HEALTH,
    Topic.DEAD_LETTER,
)

Notes = list[tuple[Any, str, dict[str, Any]]]
DbHandler = Callable[[Infra, AsyncSession, Any, Notes], Awaitable[None]]


class Orchestrator:
    def __init__(self, infra: Infra) -> None:
        self.infra = infra

    def subscribe(self) -> None:
        self.infra.bus.subscribe(self.infra.settings.consumer_group, BACKEND_TOPICS, self.handle)

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.ResponseDelta):
            await self._delta(event)
        elif isinstance(event, ev.DubChunk):
            await self._dub_chunk(event)
        elif isinstance(event, ev.WorkerHealth):
            await remember_worker(self.infra, event.worker, event.model_dump_json())
        elif (handler := DB_HANDLERS.get(type(event))) is not None:
            await self._once(event, handler)
        else:
            log.info("no backend handler for %s", event.event)

    async def _once(self, event: ev.Event, handler: DbHandler) -> None:
        notes: Notes = []
        async with self.infra.sessions() as session:
            # The event is recorded first, in the handler's transaction: a duplicate is refused
            # by the key at once (one write instead of a read and a write), a twin being handled
            # concurrently is waited for and then refused, and a handler that fails takes the
            # record back with its own changes.
            session.add(ProcessedEvent(event_id=event.event_id, event=event.event))
            try:
                await session.flush()
            except IntegrityError:
                log.info("duplicate %s %s ignored", event.event, event.event_id)
                return
            await handler(self.infra, session, event, notes)
            # An IntegrityError now is the handler's own rows refused: poison, dead-lettered.
            await session.commit()
            # Before the session is closed: closing it gives the loop away (SQLAlchemy shields
            # it in a task of its own), and the relay, woken by the commit, would take it
            # first; a reply's text then reached its stream 1.6 ms later than it could.
            for reply_id, kind, data in notes:
                await replies.notify(self.infra, reply_id, kind, **data)

    async def _delta(self, event: ev.ResponseDelta) -> None:
        if await self.infra.state.get_value(replies.stopped_key(event.message_id)) is not None:
            return  # the user stopped the reply: it keeps what it had when they did
        # The index makes a redelivered delta rewrite the same field: no id bookkeeping needed.
        key = replies.deltas_key(event.message_id)
        text = clean_generated(event.text)
        await self.infra.state.put_field(key, str(event.index), text, replies.DELTAS_TTL)
        await replies.notify(self.infra, event.message_id, "delta", index=event.index, text=text)

    async def _dub_chunk(self, event: ev.DubChunk) -> None:
        async with self.infra.sessions() as session:
            found = await load_reply(session, event.message_id)
        if found is None or not _under(found[1], event.chunk_url):
            log.warning("dub chunk for unknown reply or outside its avatar: %s", event.event_id)
            return
        if found[0].status == ReplyStatus.STOPPED:
            return
        key = replies.dub_chunks_key(event.message_id)
        await self.infra.state.put_field(key, str(event.index), event.chunk_url, replies.DELTAS_TTL)
        await replies.notify(self.infra, event.message_id, "dub_chunk", index=event.index)


def _under(avatar: Avatar, key: str) -> bool:
    """Workers may only point at objects of the avatar the event concerns."""
    return key.startswith(avatar_prefix(avatar.owner_id, avatar.id)) and ".." not in key


# A reply that has its answer, or that the user stopped: a late answer changes nothing.
_SETTLED = (ReplyStatus.READY, ReplyStatus.STOPPED)


class _Waiting(NamedTuple):
    """A reply that still takes an answer, and what its answer is stored and voiced with."""

    reply_id: uuid.UUID
    avatar_id: uuid.UUID
    owner_id: uuid.UUID
    language: str


# Built once, with a parameter: it is on every reply's way (building it cost 0.1 ms).
_WAITING = (
    select(Message.status, Avatar.id, Avatar.owner_id, Avatar.language)
    .join(Chat, col(Chat.id) == col(Message.chat_id))
    .join(Avatar, col(Avatar.id) == col(Chat.avatar_id))
    .where(Message.id == bindparam("reply"), Message.role == MessageRole.AVATAR)
)


async def _unsettled_reply(session: AsyncSession, event: Any) -> _Waiting | None:
    """The reply a text worker's answer is for, if it still takes one (pending, or failed by a
    sweep or a dead letter). Columns, not row objects: this is on every reply's way."""
    row = (await session.exec(_WAITING, params={"reply": event.message_id})).first()
    if row is None:
        log.warning("%s for unknown reply %s", event.event, event.message_id)
        return None
    status, avatar_id, owner_id, language = row
    if status in _SETTLED:
        log.info("%s for reply %s ignored: it is %s", event.event, event.message_id, status)
        return None
    return _Waiting(event.message_id, avatar_id, owner_id, language)


# The conditional writes of `_settle`, one per set of columns written, built once (building
# the answer's, with its seven columns, was a quarter of storing a reply).
_SETTLE: dict[frozenset[str], Any] = {}


async def _settle(session: AsyncSession, reply_id: uuid.UUID, **values: Any) -> bool:
    """Give the reply its outcome, in one conditional write: a stop committed a moment ago is
    seen (nothing is written), and one that comes later waits for this transaction (the row is
    locked) instead of being overwritten by it."""
    columns = frozenset(values)
    if (statement := _SETTLE.get(columns)) is None:
        statement = _SETTLE[columns] = (
            update(Message)
            .where(col(Message.id) == bindparam("reply"), col(Message.status).not_in(_SETTLED))
            # Parameters named apart from the columns: SQLAlchemy keeps those names for itself.
            .values({name: bindparam(f"new_{name}") for name in columns})
            .execution_options(synchronize_session=False)  # as in `fail_if`
        )
    params = {"reply": reply_id, **{f"new_{name}": value for name, value in values.items()}}
    if (await session.exec(statement, params=params)).rowcount:  # type: ignore[call-overload]
        return True
    log.info("the answer for reply %s ignored: it was settled meanwhile", reply_id)
    return False


async def _save_response(
    infra: Infra, session: AsyncSession, event: ev.SaveResponse, notes: Notes
) -> None:
    if (reply := await _unsettled_reply(session, event)) is None:
        return
    text = clean_generated(event.generated_text).strip()
    if not text:
        # Nothing to show or voice: a failure the user can retry, not an empty "ready".
        error = "The avatar produced no readable text; retry to ask again"
        if await _settle(session, reply.reply_id, status=ReplyStatus.FAILED, error=error):
            notes.append((reply.reply_id, "error", {"reason": error}))
        return
    sources = await _sources(session, reply.avatar_id, event.sources)
    settled = await _settle(
        session,
        reply.reply_id,
        text=text,
        status=ReplyStatus.READY,
        error=None,
        passage_ids=event.passage_ids,
        sources=sources,
        adapter_version_id=event.adapter_version_id,
        dub_status=ReplyStatus.PENDING,
    )
    if not settled:
        return
    voices = await voice_samples(session, reply.avatar_id)
    emit(
        session,
        Topic.SOUND_INFERENCE,
        ev.SoundInference(
            event_id=derive_event_id(event.event_id, "sound_inference"),
            storage_url=dub_key(reply.owner_id, reply.avatar_id, reply.reply_id),
            base_voice_url=voices[0] if voices else None,
            voice_urls=voices,
            message_id=reply.reply_id,
            text=text,
            avatar_id=reply.avatar_id,
            language=reply.language,
        ),
    )
    notes.append((reply.reply_id, "text", replies.text_event(text, event.passage_ids, sources)))


# As many sources, and as long a passage, as the contract lets a worker send.
MAX_SOURCES = 20
MAX_SOURCE_TEXT = 4000


async def _sources(
    session: AsyncSession, avatar_id: uuid.UUID, sources: list[ev.Source]
) -> list[dict[str, Any]]:
    """The reply's sources as stored, best first, each with its material's file name.

    Only materials of the reply's own avatar: a source naming any other material (another
    user's, by a worker's mistake, or one deleted since) is dropped, so that no one sees a file
    name or a passage that is not theirs."""
    ranked = sorted(sources, key=lambda s: s.rank)[:MAX_SOURCES]
    if not ranked:
        return []
    query = select(Material.id, Material.filename).where(
        col(Material.id).in_({s.material_id for s in ranked}), Material.avatar_id == avatar_id
    )
    names = dict((await session.exec(query)).all())
    return [
        {
            "material_id": str(s.material_id),
            "file_name": names[s.material_id],
            "text": clean_generated(s.text)[:MAX_SOURCE_TEXT],
            "rank": s.rank,
        }
        for s in ranked
        if s.material_id in names
    ]


async def _response_failed(
    infra: Infra, session: AsyncSession, event: ev.ResponseFailed, notes: Notes
) -> None:
    if (reply := await _unsettled_reply(session, event)) is None:
        return
    error = replies.readable_reply_failure(event.reason)
    if await _settle(session, reply.reply_id, status=ReplyStatus.FAILED, error=error):
        notes.append((reply.reply_id, "error", {"reason": error}))


def _is_dub_of(key: str, message_id: uuid.UUID) -> bool:
    """Whether `key` is where the dub of `message_id` is stored, under some avatar."""
    try:
        avatar_prefix_of(key)
    except ValueError:
        return False
    return key.endswith(f"/dubs/{message_id}.wav")


async def _save_dub(
    infra: Infra, session: AsyncSession, event: ev.SaveResponseDub, notes: Notes
) -> None:
    found = await load_reply(session, event.message_id)
    if found is None and _is_dub_of(event.dub_url, event.message_id):
        # The reply was deleted while it was being voiced: its voice goes too.
        await delete_dub(infra, event.dub_url)
        return
    if found is None or not _under(found[1], event.dub_url):
        log.warning("dub for unknown reply or outside its avatar: %s", event.event_id)
        return
    reply = found[0]
    if reply.status == ReplyStatus.STOPPED:
        return  # a stopped reply is not voiced
    reply.dub_key = event.dub_url
    reply.dub_status = ReplyStatus.READY
    reply.dub_voice = event.voice
    if event.generated_text and reply.status != ReplyStatus.READY:
        reply.text = clean_generated(event.generated_text)
        reply.status = ReplyStatus.READY
    session.add(reply)
    notes.append((reply.id, "dub", {}))


async def _dub_failed(
    infra: Infra, session: AsyncSession, event: ev.DubFailed, notes: Notes
) -> None:
    found = await load_reply(session, event.message_id)
    if found is None or found[0].dub_status == ReplyStatus.READY:
        return
    reply = found[0]
    if reply.status == ReplyStatus.STOPPED:
        return  # a stopped reply is not voiced
    reply.dub_status = ReplyStatus.FAILED
    reply.error = replies.readable_dub_failure(event.reason)
    session.add(reply)
    notes.append((reply.id, "dub_error", {"reason": reply.error}))


async def _active_run(session: AsyncSession, event: Any) -> tuple[TrainingRun, Avatar] | None:
    """The run an event reports on, if it is still the avatar's live run; events of a run the
    user stopped, or that already ended, change nothing."""
    # Claimed with a conditional write first: a stop or a sweep committed a moment ago is seen,
    # and one that comes later waits for this transaction (the row is locked) instead of being
    # overwritten by it.
    claimed = await fail_if(
        session,
        TrainingRun,
        event.run_id,
        col(TrainingRun.status).in_(ACTIVE_RUN_STATUSES),
        updated_at=utcnow(),
    )
    run = await session.get(TrainingRun, event.run_id, populate_existing=True)
    if not claimed or run is None or run.avatar_id != event.avatar_id:
        log.info("%s for run %s that is not active; ignored", event.event, event.run_id)
        return None
    avatar = await session.get(Avatar, run.avatar_id)
    return (run, avatar) if avatar else None


async def _train_progress(
    infra: Infra, session: AsyncSession, event: ev.TrainProgress, notes: Notes
) -> None:
    if (found := await _active_run(session, event)) is None:
        return
    run, avatar = found
    if event.phase in ("preparing", "loading"):
        # Not a column: a passing state, shown only while the run has not reported a step.
        await infra.state.set_value(phase_key(run.id), event.phase, PHASE_TTL)
        return
    if run.step > event.step:  # an older report arriving late
        return
    run.sqlmodel_update(
        event.model_dump(
            include={"step", "total_steps", "loss", "eval_loss", "tokens_per_second", "eta_seconds"}
        )
    )
    logged = event.logged or [
        ev.LoggedLoss(step=event.step, loss=event.loss, eval_loss=event.eval_loss)
    ]
    # A new list, so the ORM sees the JSON column change.
    run.loss_history = _with_losses(run.loss_history, logged)[-500:]
    run.status = RunStatus.TRAINING
    avatar.status = AvatarStatus.TRAINING
    session.add_all([run, avatar])


def _with_losses(history: list[list[float]], logged: list[ev.LoggedLoss]) -> list[list[float]]:
    """The loss chart's points with these steps added: `[step, loss]`, and a validation loss
    as a third value on the point of its step (the trainer logs it right after that step's)."""
    points = [list(p) for p in history]
    for entry in logged:
        if entry.loss is not None and not (points and points[-1][0] >= entry.step):
            points.append([float(entry.step), entry.loss])
        if entry.eval_loss is not None and points and points[-1][0] == entry.step:
            points[-1] = [*points[-1][:2], entry.eval_loss]
    return points


async def _train_finished(
    infra: Infra, session: AsyncSession, event: ev.TrainFinished, notes: Notes
) -> None:
    if (found := await _active_run(session, event)) is None:
        return
    run, avatar = found
    if not _under(avatar, event.adapter_url):
        end_run(session, run, avatar, RunStatus.FAILED, "the adapter was stored outside the avatar")
        return
    count = (
        await session.exec(select(func.count()).where(AdapterVersion.avatar_id == avatar.id))
    ).one()
    version = AdapterVersion(
        avatar_id=avatar.id,
        run_id=run.id,
        number=count + 1,
        adapter_key=event.adapter_url,
        dataset_version=event.dataset_version,
        metrics=event.metrics,
        config=json.loads(json.dumps(event.config, default=str)),
    )
    session.add(version)
    avatar.active_version_id = version.id
    end_run(session, run, avatar, RunStatus.FINISHED, None)


async def _train_failed(
    infra: Infra, session: AsyncSession, event: ev.TrainFailed, notes: Notes
) -> None:
    if (found := await _active_run(session, event)) is not None:
        end_run(session, *found, RunStatus.FAILED, clean_generated(event.reason)[:2000])


async def _train_stopped(
    infra: Infra, session: AsyncSession, event: ev.TrainStopped, notes: Notes
) -> None:
    if (found := await _active_run(session, event)) is not None:
        end_run(session, *found, RunStatus.STOPPED, None)


async def _material_event(infra: Infra, session: AsyncSession, event: Any, notes: Notes) -> None:
    material = await session.get(Material, event.material_id)
    if material is None or material.avatar_id != event.avatar_id:
        return  # deleted meanwhile
    if material.status in (MaterialStatus.PROCESSED, MaterialStatus.FAILED) and isinstance(
        event, ev.MaterialProcessing
    ):
        return  # a late "started" after the outcome
    if isinstance(event, ev.MaterialProcessing):
        material.status = MaterialStatus.PROCESSING
    elif isinstance(event, ev.MaterialProcessed):
        avatar = await session.get(Avatar, material.avatar_id)
        if event.transcript_url and avatar and not _under(avatar, event.transcript_url):
            log.warning("transcript outside its avatar ignored: %s", event.event_id)
            return
        material.status = MaterialStatus.PROCESSED
        material.status_detail = None
        material.transcript_key = event.transcript_url
    else:
        material.status = MaterialStatus.FAILED
        material.status_detail = clean_generated(event.reason)[:2000]
    if not isinstance(event, ev.MaterialProcessing) and event.senders:
        # Kept from the first reading on: a reprocess with the chosen sender finds them again.
        material.senders = [
            {"name": clean_generated(s.name)[:255], "messages": s.messages} for s in event.senders
        ]
    session.add(material)


# Which part of a reply a poison event was about, by the topic it came on (its type may not
# have parsed).
_DUB_TOPICS = {Topic.SOUND_INFERENCE, Topic.SAVE_RESPONSE_DUB}


async def _dead_letter(
    infra: Infra, session: AsyncSession, event: ev.DeadLetter, notes: Notes
) -> None:
    """A consumer gave up on an event: fail what it belonged to, so nothing waits forever."""
    if event.topic == Topic.LLM_CANCEL:
        # The reply was stopped (the backend already decided that); it may have been retried
        # since, and the new attempt must not fail for the old stop.
        log.warning("a stop the text worker could not handle: %s", event.reason)
        return
    reason = clean_generated(f"Bishop could not process this ({event.group}): {event.reason}")
    reason = reason[:2000]
    if event.message_id is not None:
        log.warning("reply %s dead-lettered: %s", event.message_id, reason)
        found = await load_reply(session, event.message_id)
        if found is None:
            return
        reply_id = found[0].id
        if event.topic in _DUB_TOPICS:
            waiting = col(Message.dub_status) == ReplyStatus.PENDING
            plain = replies.DUB_FAILED
            values: dict[str, Any] = {"dub_status": ReplyStatus.FAILED, "error": plain}
            note = "dub_error"
        else:
            waiting = col(Message.status) == ReplyStatus.PENDING
            plain = replies.REPLY_NOT_PROCESSED
            values = {"status": ReplyStatus.FAILED, "error": plain}
            note = "error"
        if await fail_if(session, Message, reply_id, waiting, **values):
            notes.append((reply_id, note, {"reason": plain}))
    elif event.material_id is not None:
        in_progress = col(Material.status).in_([MaterialStatus.UPLOADED, MaterialStatus.PROCESSING])
        await fail_if(
            session,
            Material,
            event.material_id,
            in_progress,
            status=MaterialStatus.FAILED,
            status_detail=reason,
        )
    elif event.run_id is not None and event.avatar_id is not None:
        if (found_run := await _active_run(session, event)) is not None:
            end_run(session, *found_run, RunStatus.FAILED, reason)
    else:
        log.error("dead letter %s concerns nothing that can be failed", event.event_id)


DB_HANDLERS: dict[type[ev.Event], DbHandler] = {
    ev.DeadLetter: _dead_letter,
    ev.SaveResponse: _save_response,
    ev.ResponseFailed: _response_failed,
    ev.SaveResponseDub: _save_dub,
    ev.DubFailed: _dub_failed,
    ev.TrainProgress: _train_progress,
    ev.TrainFinished: _train_finished,
    ev.TrainFailed: _train_failed,
    ev.TrainStopped: _train_stopped,
    ev.MaterialProcessing: _material_event,
    ev.MaterialProcessed: _material_event,
    ev.MaterialFailed: _material_event,
}
