"""Chats and messages: sending a message asks the text worker for a reply."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from bishop_contracts.events import InferenceResponse, Persona, ResponseCancel, SoundInference, Turn
from bishop_contracts.layout import compressed_dub_key
from bishop_contracts.text import clean_generated
from bishop_contracts.topics import Topic
from sqlalchemy import bindparam, inspect
from sqlalchemy.orm import aliased
from sqlmodel import case, col, exists, or_, select, union_all
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.errors import Conflict, NotFound
from bishop_backend.infra import Infra
from bishop_backend.keys import dub_key
from bishop_backend.models import (
    AdapterVersion,
    Avatar,
    Chat,
    ChatCreate,
    ChatUpdate,
    Material,
    MaterialStatus,
    Message,
    MessagePublic,
    MessageRole,
    MessageSent,
    ReplyStatus,
)
from bishop_backend.services import replies
from bishop_backend.services.idempotency import Idempotency
from bishop_backend.services.outbox import emit
from bishop_backend.services.sweeper import fail_if

# A reply the user may ask for again: its generation failed, or the user stopped it.
RETRYABLE = (ReplyStatus.FAILED, ReplyStatus.STOPPED)


async def create_chat(session: AsyncSession, avatar: Avatar, chat_in: ChatCreate) -> Chat:
    """A new chat; the avatar's greeting, if it has one, is its first message."""
    chat = Chat.model_validate(chat_in, update={"avatar_id": avatar.id})
    session.add(chat)
    if avatar.greeting.strip():
        # Not voiced: a greeting is read at once, and a dub of it would cost every new chat.
        session.add(Message(chat_id=chat.id, role=MessageRole.AVATAR, text=avatar.greeting))
    await session.commit()
    return chat


async def rename_chat(session: AsyncSession, chat: Chat, chat_in: ChatUpdate) -> Chat:
    chat.title = chat_in.title
    session.add(chat)
    await session.commit()
    return chat


async def delete_chat(session: AsyncSession, chat: Chat) -> None:
    await session.delete(chat)
    await session.commit()


async def history(
    session: AsyncSession, chat: Chat, limit: int | None = None, before: Message | None = None
) -> list[Message]:
    """The chat's messages, oldest first: all of them, or the last `limit` (before `before`)."""
    query = select(Message).where(Message.chat_id == chat.id)
    if before is not None:
        query = query.where(col(Message.created_at) < before.created_at)
    if limit is None:
        return list((await session.exec(query.order_by(col(Message.created_at)))).all())
    newest = (await session.exec(query.order_by(col(Message.created_at).desc()).limit(limit))).all()
    return list(reversed(newest))


async def send(
    infra: Infra,
    session: AsyncSession,
    avatar: Avatar,
    chat: Chat,
    text: str,
    idempotency: Idempotency | None = None,
    reply_id: uuid.UUID | None = None,
) -> MessageSent:
    """Store the user's message, a pending reply (`reply_id`) and its request, in one go."""
    message = Message(chat_id=chat.id, role=MessageRole.USER, text=text)
    reply = Message(
        id=reply_id or uuid.uuid4(),
        chat_id=chat.id,
        role=MessageRole.AVATAR,
        reply_to_id=message.id,
        status=ReplyStatus.PENDING,
    )
    await _request_reply(infra, session, avatar, chat, reply, message)
    session.add_all([message, reply])
    sent = MessageSent(message=MessagePublic.model_validate(message), response_id=reply.id)
    if idempotency is not None:
        idempotency.remember(session, 201, sent, fingerprint=text)
    await session.commit()
    return sent


async def retry(
    infra: Infra, session: AsyncSession, avatar: Avatar, chat: Chat, reply: Message
) -> Message:
    """Ask again for a reply whose generation failed or was stopped."""
    if reply.status not in RETRYABLE:
        raise Conflict("Only a failed or stopped reply can be retried")
    question = await session.get(Message, reply.reply_to_id) if reply.reply_to_id else None
    if question is None:
        raise NotFound("The message this reply answers is gone")
    # What the earlier attempt streamed must not mix with the new one's pieces.
    await infra.state.delete(replies.deltas_key(reply.id))
    await infra.state.delete(replies.dub_chunks_key(reply.id))
    await infra.state.delete(replies.stopped_key(reply.id))
    # Claimed with a conditional write: of two retries at once (a double click, two tabs), one
    # asks for a reply and the other gets 409.
    claimed = await fail_if(
        session,
        Message,
        reply.id,
        col(Message.status).in_(RETRYABLE),
        status=ReplyStatus.PENDING,
        error=None,
        text="",
        dub_status=ReplyStatus.NONE,
        dub_key=None,
    )
    if not claimed:
        raise Conflict("Only a failed or stopped reply can be retried")
    await session.refresh(reply)
    await _request_reply(infra, session, avatar, chat, reply, question)
    await session.commit()
    return reply


async def stop(infra: Infra, session: AsyncSession, avatar: Avatar, reply: Message) -> Message:
    """Stop a reply while it is generated: it keeps the text streamed so far, is not voiced,
    and the text worker is told to stop generating it."""
    if reply.status != ReplyStatus.PENDING:
        raise Conflict(f"Only a reply being generated can be stopped; this one is {reply.status}")
    # The backend decides the outcome, from what was streamed: a stop works with the worker down.
    pieces = await infra.state.get_fields(replies.deltas_key(reply.id))
    text = clean_generated("".join(pieces[i] for i in sorted(pieces, key=int))).strip()
    # Claimed with a conditional write: a reply that became ready (or failed) a moment ago, or
    # a second stop at once, gets 409; a late answer of the generation waits for this
    # transaction and then finds the reply stopped.
    claimed = await fail_if(
        session,
        Message,
        reply.id,
        col(Message.status) == ReplyStatus.PENDING,
        status=ReplyStatus.STOPPED,
        text=text,
        error=None,
        dub_status=ReplyStatus.NONE,
    )
    if not claimed:
        await session.rollback()
        await session.refresh(reply)
        raise Conflict(f"Only a reply being generated can be stopped; this one is {reply.status}")
    emit(session, Topic.LLM_CANCEL, ResponseCancel(message_id=reply.id, avatar_id=avatar.id))
    await session.commit()
    await session.refresh(reply)
    await infra.state.set_value(replies.stopped_key(reply.id), "1", replies.DELTAS_TTL)
    await replies.notify(infra, reply.id, "stopped", text=reply.text)
    return reply


async def _request_reply(
    infra: Infra,
    session: AsyncSession,
    avatar: Avatar,
    chat: Chat,
    reply: Message,
    question: Message,
) -> None:
    """Queue the request for `reply` to `question` in the outbox (committed by the caller)."""
    turns = await _recent_turns(
        session, chat, infra.settings.chat_history_turns, question=question, reply=reply.id
    )
    version = (
        await session.get(AdapterVersion, avatar.active_version_id)
        if avatar.active_version_id
        else None
    )
    event = InferenceResponse(
        message_id=reply.id,
        text=question.text,
        avatar_id=avatar.id,
        chat_id=chat.id,
        persona=Persona.model_validate(avatar, from_attributes=True),
        history=turns,
        adapter_url=version.adapter_key if version else None,
        adapter_version_id=version.id if version else None,
        transcript_urls=await _transcripts(session, avatar),
    )
    emit(session, Topic.LLM_INFERENCE, event)


# The statements of every chat turn are built once (with parameters): building them cost
# 0.1 ms each, and the history's two aliases of `message` 2 ms.
_NO_CUTOFF = datetime.max.replace(tzinfo=UTC)
# The history is read from the chat's newest turns back, never the whole chat: a turn is a
# message that answers none (a user's message, or the greeting) with its newest ready reply, and
# a reply stands where its message does. The newest `limit` of those turns hold the last `limit`
# messages, and the index on (chat, time) finds them without reading older ones (reading the
# whole chat cost 2.8 ms a send at 1,000 turns and 11.5 ms at 4,000).
_turns = (
    select(col(Message.id).label("turn"), col(Message.created_at).label("position"))
    .where(
        Message.chat_id == bindparam("chat"),
        col(Message.reply_to_id).is_(None),
        Message.status == ReplyStatus.READY,
        Message.id != bindparam("question"),
        # A regenerated reply to an earlier message is asked with the chat as it was then.
        Message.created_at < bindparam("asked_at"),
    )
    .order_by(col(Message.created_at).desc())
    .limit(bindparam("limit"))
    .cte("turns")
)
_newer = aliased(Message)
_turn_messages = union_all(
    select(Message.role, Message.text, _turns.c.position).join(
        _turns, col(Message.id) == _turns.c.turn
    ),
    select(Message.role, Message.text, _turns.c.position)
    .join(_turns, col(Message.reply_to_id) == _turns.c.turn)
    .where(
        Message.status == ReplyStatus.READY,
        Message.id != bindparam("reply"),
        ~exists()
        .where(
            _newer.reply_to_id == Message.reply_to_id,
            _newer.status == ReplyStatus.READY,
            _newer.created_at > Message.created_at,
        )
        .correlate(Message),
    ),
).subquery()
_RECENT_TURNS = (
    select(_turn_messages.c.role, _turn_messages.c.text)
    .order_by(
        _turn_messages.c.position.desc(),
        case((_turn_messages.c.role == MessageRole.USER, 0), else_=1).desc(),
    )
    .limit(bindparam("limit"))
)


async def _recent_turns(
    session: AsyncSession, chat: Chat, limit: int, question: Message, reply: uuid.UUID
) -> list[Turn]:
    """The chat's last `limit` answered messages before `question`, oldest first, with one
    reply per message: its newest alternative (columns only: building a row object for each
    cost more than the rest of the send). A reply stands where its message does: an
    alternative regenerated later still answers the message it answers."""
    # A message being sent is asked with the whole chat (its own clock must not cut the turns
    # of a replica whose clock is ahead); one asked again, with the chat as it was then.
    asked_at = question.created_at if inspect(question).persistent else _NO_CUTOFF
    params = {
        "chat": chat.id,
        "reply": reply,
        "question": question.id,
        "asked_at": asked_at,
        "limit": limit,
    }
    rows = (await session.exec(_RECENT_TURNS, params=params)).all()
    return [Turn(role=role, text=text) for role, text in reversed(rows)]  # type: ignore[arg-type]


_TRANSCRIPTS = select(Material.transcript_key).where(
    Material.avatar_id == bindparam("avatar"),
    Material.status == MaterialStatus.PROCESSED,
    col(Material.transcript_key).is_not(None),
)


async def _transcripts(session: AsyncSession, avatar: Avatar) -> list[str]:
    rows = await session.exec(_TRANSCRIPTS, params={"avatar": avatar.id})
    return [key for key in rows.all() if key]


async def reply_of(session: AsyncSession, message: Message) -> Message:
    """The avatar's reply to `message` (its newest alternative), or `message` itself when it
    is a reply."""
    if message.role == MessageRole.AVATAR:
        return message
    query = (
        select(Message)
        .where(Message.reply_to_id == message.id)
        .order_by(col(Message.created_at).desc())
    )
    reply = (await session.exec(query)).first()
    if reply is None:
        raise NotFound("This message has no reply")
    return reply


async def load_reply(session: AsyncSession, reply_id: uuid.UUID) -> tuple[Message, Avatar] | None:
    """A reply with the avatar it belongs to (for handlers, which have no user to check)."""
    query = (
        select(Message, Avatar)
        .join(Chat, col(Chat.id) == col(Message.chat_id))
        .join(Avatar, col(Avatar.id) == col(Chat.avatar_id))
        .where(Message.id == reply_id, Message.role == MessageRole.AVATAR)
    )
    row = (await session.exec(query)).first()
    return (row[0], row[1]) if row else None


@asynccontextmanager
async def _history_unchanged_by_others(
    infra: Infra, session: AsyncSession, chat: Chat
) -> AsyncIterator[None]:
    """One change of the chat's history at a time, and none while a reply of the chat is still
    being generated (409): changing the history under it would answer a conversation that no
    longer exists. The lock makes two clicks at once one change and one 409."""
    async with infra.state.lock(f"chat:{chat.id}:history"):
        query = select(Message.id).where(
            Message.chat_id == chat.id, Message.status == ReplyStatus.PENDING
        )
        if (await session.exec(query)).first() is not None:
            raise Conflict("Wait until the avatar has finished replying, or stop the reply")
        yield


async def regenerate(
    infra: Infra, session: AsyncSession, avatar: Avatar, chat: Chat, reply: Message
) -> Message:
    """Ask for another reply to the same message; the earlier ones stay as alternatives."""
    if reply.reply_to_id is None:
        raise Conflict("This message answers nothing, so it cannot be regenerated")
    question = await session.get(Message, reply.reply_to_id)
    if question is None:
        raise NotFound("The message this reply answers is gone")
    async with _history_unchanged_by_others(infra, session, chat):
        alternative = Message(
            chat_id=chat.id,
            role=MessageRole.AVATAR,
            reply_to_id=question.id,
            status=ReplyStatus.PENDING,
        )
        await _request_reply(infra, session, avatar, chat, alternative, question)
        session.add(alternative)
        await session.commit()
    return alternative


async def edit(
    infra: Infra, session: AsyncSession, avatar: Avatar, chat: Chat, message: Message, text: str
) -> MessageSent:
    """Replace a user's message, drop everything after it, and ask for a new reply."""
    if message.role != MessageRole.USER:
        raise Conflict("Only your own messages can be edited")
    async with _history_unchanged_by_others(infra, session, chat):
        # What comes after it in the conversation: the later messages with their replies (an
        # alternative regenerated since for an earlier message stays: it answers that one).
        later_questions = select(Message.id).where(
            Message.chat_id == chat.id,
            Message.role == MessageRole.USER,
            col(Message.created_at) > message.created_at,
        )
        later = select(Message).where(
            Message.chat_id == chat.id,
            or_(
                col(Message.id).in_(later_questions),
                col(Message.reply_to_id).in_(later_questions),
                Message.reply_to_id == message.id,
            ),
        )
        dubs = await _delete_messages(session, list((await session.exec(later)).all()))
        message.text = text
        session.add(message)
        reply = Message(
            chat_id=chat.id,
            role=MessageRole.AVATAR,
            reply_to_id=message.id,
            status=ReplyStatus.PENDING,
        )
        await _request_reply(infra, session, avatar, chat, reply, message)
        session.add(reply)
        await session.commit()
        await _delete_dubs(infra, dubs)
    await session.refresh(message)
    return MessageSent(message=MessagePublic.model_validate(message), response_id=reply.id)


async def delete_message(infra: Infra, session: AsyncSession, chat: Chat, message: Message) -> None:
    """Delete a user's message with its replies, or one reply (one alternative)."""
    doomed = [message]
    if message.role == MessageRole.USER:
        query = select(Message).where(Message.reply_to_id == message.id)
        doomed += list((await session.exec(query)).all())
    if any(m.status == ReplyStatus.PENDING for m in doomed):
        raise Conflict("This reply is still being written; stop it first")
    dubs = await _delete_messages(session, doomed)
    await session.commit()
    await _delete_dubs(infra, dubs)


async def _delete_messages(session: AsyncSession, messages: list[Message]) -> list[str]:
    """Delete rows (committed by the caller); the keys of their stored dubs, to delete once
    the rows are gone (a failed commit must not leave a reply whose voice is lost). A voice
    still being made is deleted when it arrives (`orchestrator._save_dub`)."""
    dubs = []
    for message in messages:
        if message.dub_key:
            dubs.append(message.dub_key)
        await session.delete(message)
    return dubs


async def _delete_dubs(infra: Infra, keys: list[str]) -> None:
    for key in keys:
        await delete_dub(infra, key)


async def delete_dub(infra: Infra, key: str) -> None:
    """A dub: its WAV and MP3, and the sentences stored beside them (`…/{id}/{index}`)."""
    await infra.storage.delete(key)
    await infra.storage.delete(compressed_dub_key(key))
    await infra.storage.delete_prefix(key.removesuffix(".wav") + "/")


async def voice_again(
    infra: Infra, session: AsyncSession, avatar: Avatar, reply: Message
) -> Message:
    """Ask the sound worker again for the dub of a reply whose voicing failed."""
    if reply.role != MessageRole.AVATAR or reply.dub_status != ReplyStatus.FAILED:
        raise Conflict("Only a reply whose voice failed can be voiced again")
    claimed = await fail_if(
        session,
        Message,
        reply.id,
        col(Message.dub_status) == ReplyStatus.FAILED,
        dub_status=ReplyStatus.PENDING,
        error=None,
    )
    if not claimed:
        raise Conflict("Only a reply whose voice failed can be voiced again")
    await infra.state.delete(replies.dub_chunks_key(reply.id))
    voices = await voice_samples(session, avatar.id)
    emit(
        session,
        Topic.SOUND_INFERENCE,
        SoundInference(
            storage_url=dub_key(avatar.owner_id, avatar.id, reply.id),
            base_voice_url=voices[0] if voices else None,
            voice_urls=voices,
            message_id=reply.id,
            text=reply.text,
            avatar_id=avatar.id,
            language=avatar.language,
        ),
    )
    await session.commit()
    await session.refresh(reply)
    return reply


_VOICE_SAMPLES = (
    select(Material.storage_key)
    .where(
        Material.avatar_id == bindparam("avatar"),
        Material.type == "voice_synthesis",
        Material.status != MaterialStatus.FAILED,
    )
    .order_by(col(Material.created_at).desc())
)


async def voice_samples(session: AsyncSession, avatar_id: uuid.UUID) -> list[str]:
    """The avatar's usable voice samples, newest first: the sound worker clones from them."""
    return list((await session.exec(_VOICE_SAMPLES, params={"avatar": avatar_id})).all())
