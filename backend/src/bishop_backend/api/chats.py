import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any, Literal

from bishop_contracts.layout import COMPRESSED_DUB_TYPE, compressed_dub_key
from bishop_infra.storage import Storage
from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.exc import IntegrityError

from bishop_backend.api.deps import (
    API_PREFIX,
    AfterResponse,
    IdempotencyDep,
    InfraDep,
    OwnedAvatar,
    OwnedChat,
    OwnedMessage,
    RangeHeader,
    SessionDep,
)
from bishop_backend.api.responses import errors, not_json
from bishop_backend.errors import NotFound
from bishop_backend.models import (
    Avatar,
    Chat,
    ChatCreate,
    ChatPublic,
    ChatUpdate,
    Message,
    MessageCreate,
    MessagePublic,
    MessageSent,
    ReplyStatus,
)
from bishop_backend.models.chat import ChatSummary
from bishop_backend.services import chats, replies, search
from bishop_backend.services.downloads import object_response
from bishop_backend.services.idempotency import Idempotency

router = APIRouter(prefix="/avatars/{avatar_id}/chat", tags=["chats"])


def _event(kinds: list[str], payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": kinds},
            "data": {"contentMediaType": "application/json", "contentSchema": payload},
            "retry": {"type": "integer"},
        },
    }


def _payload(**fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(fields), "properties": fields}


_TEXT, _INDEX, _URL = {"type": "string"}, {"type": "integer"}, {"type": "string"}
# One event of a reply stream (see `replies.stream`).
REPLY_EVENT = {
    "oneOf": [
        _event(["delta"], _payload(index=_INDEX, text=_TEXT)),
        # The final text, and the passages of the avatar's materials it was built on.
        _event(
            ["text"],
            _payload(
                text=_TEXT,
                passage_ids={"type": "array", "items": _TEXT},
                sources={"type": "array", "items": {"$ref": "#/components/schemas/SourcePublic"}},
            ),
        ),
        _event(["dub_chunk"], _payload(index=_INDEX, url=_URL)),
        _event(["dub"], _payload(url=_URL)),
        # The user stopped the reply: the text it keeps; the stream ends.
        _event(["stopped"], _payload(text=_TEXT)),
        _event(["error", "dub_error", "reconnect", "timeout"], _payload(reason=_TEXT)),
    ]
}


# The reply's events after the `sent` event of a message sent with `Accept: text/event-stream`.
SENT_THEN_REPLY_EVENTS = {
    "oneOf": [
        _event(["sent"], {"$ref": "#/components/schemas/MessageSent"}),
        *REPLY_EVENT["oneOf"],
    ]
}
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# The dub routes serve the thesis's WAV, or with `?format=mp3` the MP3 the sound worker stores
# beside it (a dub voiced before MP3s has none: 404, and the player falls back to the WAV).
DubFormat = Annotated[
    Literal["wav", "mp3"],
    Query(alias="format", description="`mp3`: the same audio, compressed (audio/mpeg)."),
]


def _audio(description: str) -> dict[str, Any]:
    extra = not_json("audio/wav", description)
    extra["responses"]["200"]["content"][COMPRESSED_DUB_TYPE] = {"schema": {"format": "binary"}}
    return extra


async def _dub_response(storage: Storage, wav_key: str, kind: str, range_: str | None) -> Response:
    if kind == "wav":
        return await object_response(storage, wav_key, "audio/wav", range_header=range_)
    key = compressed_dub_key(wav_key)
    try:
        return await object_response(storage, key, COMPRESSED_DUB_TYPE, range_header=range_)
    except NotFound:
        raise NotFound("This dub has no MP3 version; ask for the WAV") from None


@router.post("", response_model=ChatPublic, status_code=201)
async def create_chat(session: SessionDep, avatar: OwnedAvatar, chat_in: ChatCreate) -> Chat:
    return await chats.create_chat(session, avatar, chat_in)


@router.get("", response_model=list[ChatSummary])
async def list_chats(session: SessionDep, avatar: OwnedAvatar) -> list[ChatSummary]:
    """The avatar's chats, the most recently active first, each with its newest message."""
    return await search.chat_summaries(session, avatar)


@router.get("/{chat_id}", response_model=ChatPublic)
async def read_chat(chat: OwnedChat) -> Chat:
    return chat


@router.put("/{chat_id}", response_model=ChatPublic)
@router.patch("/{chat_id}", response_model=ChatPublic)
async def rename_chat(session: SessionDep, chat: OwnedChat, chat_in: ChatUpdate) -> Chat:
    return await chats.rename_chat(session, chat, chat_in)


@router.delete("/{chat_id}", status_code=204)
async def delete_chat(session: SessionDep, chat: OwnedChat) -> None:
    await chats.delete_chat(session, chat)


@router.get("/{chat_id}/msgs", response_model=list[MessagePublic])
async def list_messages(
    session: SessionDep,
    chat: OwnedChat,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    before: uuid.UUID | None = None,
) -> list[Message]:
    """The chat's messages, oldest first; `limit` gives the newest ones, `before` pages back."""
    anchor = await session.get(Message, before) if before else None
    if before and (anchor is None or anchor.chat_id != chat.id):
        raise NotFound("Message not found")
    return await chats.history(session, chat, limit, anchor)


@router.post(
    "/{chat_id}/msgs",
    response_model=MessageSent,
    status_code=201,
    responses={
        201: {
            "description": "The message is stored. With `Accept: text/event-stream`, the reply's "
            "Server-Sent Events follow in the same response, after a `sent` event with this body.",
            "content": {"text/event-stream": {"schema": SENT_THEN_REPLY_EVENTS}},
        }
    },
)
async def send_message(
    session: SessionDep,
    infra: InfraDep,
    chat: OwnedChat,  # first: it loads the avatar with it (see deps)
    avatar: OwnedAvatar,
    body: MessageCreate,
    idempotency: IdempotencyDep,
    after: AfterResponse,
    accept: Annotated[str, Header()] = "",
) -> MessageSent | Response:
    """Send a message; the reply is generated in the background (see `response/stream`).

    With `Accept: text/event-stream` the reply streams in this same response, as OpenAI's and
    Ollama's chat APIs do with `stream`: one request per turn instead of two."""
    if "text/event-stream" not in accept:
        return await _send(session, infra, chat, avatar, body, idempotency)
    # The reply's channel is subscribed to before the send commits: every event of the reply
    # is then in it, and the stream need not read the reply first.
    channel = AsyncExitStack()
    await after.enter_async_context(channel)
    reply_id = uuid.uuid4()
    subscribing = infra.state.subscribe(replies.channel(reply_id))
    live: AsyncIterator[str] | None = await channel.enter_async_context(subscribing)
    sent = await _send(session, infra, chat, avatar, body, idempotency, reply_id)
    if isinstance(sent, Response):
        # A repeat of an earlier send (its reply has another id), or its refusal.
        await channel.aclose()
        if sent.status_code != 201:
            return sent
        live = None
    public = MessageSent.model_validate_json(sent.body) if isinstance(sent, Response) else sent
    dub_url = replies.dub_path(API_PREFIX, avatar.id, chat.id, public.response_id)
    await session.close()  # the stream must not hold a pooled connection (see response/stream)
    events = replies.stream(
        infra,
        public.response_id,
        dub_url,
        first=replies.sse("sent", public.model_dump(mode="json")),
        live=live,
    )
    # The stream ends before its channel does: its reader must stop before the channel closes.
    channel.push_async_callback(events.aclose)
    headers = {**_STREAM_HEADERS, **(dict(sent.headers) if isinstance(sent, Response) else {})}
    headers.pop("content-length", None)
    headers.pop("content-type", None)
    return StreamingResponse(
        events, status_code=201, media_type="text/event-stream", headers=headers
    )


async def _send(
    session: SessionDep,
    infra: InfraDep,
    chat: Chat,
    avatar: Avatar,
    body: MessageCreate,
    idempotency: Idempotency | None,
    reply_id: uuid.UUID | None = None,
) -> MessageSent | JSONResponse:
    if idempotency and (earlier := await idempotency.replay(session, body.message)):
        return earlier
    try:
        return await chats.send(infra, session, avatar, chat, body.message, idempotency, reply_id)
    except IntegrityError:
        # The same key, sent twice at once: the first one's transaction won.
        await session.rollback()
        if idempotency and (earlier := await idempotency.replay(session, body.message)):
            return earlier
        raise NotFound("The chat was deleted meanwhile") from None


@router.get("/{chat_id}/msgs/{msg_id}/response", response_model=MessagePublic)
async def read_response(session: SessionDep, message: OwnedMessage) -> Message:
    """The reply once its text is ready (404 until then; a failed one says why, a stopped one
    has the text it kept)."""
    reply = await chats.reply_of(session, message)
    if reply.status in (ReplyStatus.FAILED, ReplyStatus.STOPPED):
        return reply
    if reply.status != ReplyStatus.READY:
        raise NotFound("The response is not ready yet")
    return reply


@router.post(
    "/{chat_id}/msgs/{msg_id}/response/retry", response_model=MessagePublic, responses=errors(409)
)
async def retry_response(
    session: SessionDep,
    infra: InfraDep,
    message: OwnedMessage,  # first: it loads the chat and the avatar with it (see deps)
    chat: OwnedChat,
    avatar: OwnedAvatar,
) -> Message:
    """Ask again for a reply whose generation failed or was stopped (409 for any other reply)."""
    reply = await chats.reply_of(session, message)
    return await chats.retry(infra, session, avatar, chat, reply)


@router.put("/{chat_id}/msgs/{msg_id}", response_model=MessageSent, responses=errors(409))
async def edit_message(
    session: SessionDep,
    infra: InfraDep,
    message: OwnedMessage,  # first: it loads the chat and the avatar with it (see deps)
    chat: OwnedChat,
    avatar: OwnedAvatar,
    body: MessageCreate,
) -> MessageSent:
    """Edit and resend a user's message: the messages after it are deleted and a new reply is
    asked for (409 while a reply of the chat is still being written, or for a reply)."""
    return await chats.edit(infra, session, avatar, chat, message, body.message)


@router.delete("/{chat_id}/msgs/{msg_id}", status_code=204, responses=errors(409))
async def delete_message(
    session: SessionDep, infra: InfraDep, message: OwnedMessage, chat: OwnedChat
) -> None:
    """Delete a user's message with its replies, or one reply (409 while it is being written)."""
    await chats.delete_message(infra, session, chat, message)


@router.post(
    "/{chat_id}/msgs/{msg_id}/response/regenerate",
    response_model=MessagePublic,
    status_code=201,
    responses=errors(409),
)
async def regenerate_response(
    session: SessionDep,
    infra: InfraDep,
    message: OwnedMessage,  # first: it loads the chat and the avatar with it (see deps)
    chat: OwnedChat,
    avatar: OwnedAvatar,
) -> Message:
    """Another reply to the same message, as a new alternative; the earlier ones are kept (409
    while a reply of the chat is still being written)."""
    reply = await chats.reply_of(session, message)
    return await chats.regenerate(infra, session, avatar, chat, reply)


@router.post(
    "/{chat_id}/msgs/{msg_id}/response/dub/retry",
    response_model=MessagePublic,
    responses=errors(409),
)
async def retry_dub(
    session: SessionDep,
    infra: InfraDep,
    message: OwnedMessage,  # first: it loads the avatar with it (see deps)
    avatar: OwnedAvatar,
) -> Message:
    """Voice a reply again whose dub failed (409 for any other reply)."""
    reply = await chats.reply_of(session, message)
    return await chats.voice_again(infra, session, avatar, reply)


@router.post(
    "/{chat_id}/msgs/{msg_id}/response/stop", response_model=MessagePublic, responses=errors(409)
)
async def stop_response(
    session: SessionDep,
    infra: InfraDep,
    message: OwnedMessage,  # first: it loads the avatar with it (see deps)
    avatar: OwnedAvatar,
) -> Message:
    """Stop a reply while it streams: it keeps the text so far, is marked `stopped` and is not
    voiced (409 once the reply is ready, failed or stopped)."""
    reply = await chats.reply_of(session, message)
    return await chats.stop(infra, session, avatar, reply)


@router.get(
    "/{chat_id}/msgs/{msg_id}/response/stream",
    response_class=StreamingResponse,
    openapi_extra=not_json(
        "text/event-stream", "Server-Sent Events until the reply is voiced", REPLY_EVENT
    ),
)
async def stream_response(
    session: SessionDep, infra: InfraDep, message: OwnedMessage, avatar: OwnedAvatar
) -> StreamingResponse:
    """Server-Sent Events: `delta`..., `text`, `dub_chunk`..., `dub` (or `error`/`dub_error`;
    `stopped` with the text kept, for a reply the user stopped)."""
    reply = await chats.reply_of(session, message)
    dub_url = replies.dub_path(API_PREFIX, avatar.id, reply.chat_id, reply.id)
    # A stream waits up to minutes: it must not keep a pooled connection checked out meanwhile
    # (the stream reads what it needs with short sessions of its own).
    await session.close()
    return StreamingResponse(
        replies.stream(infra, reply.id, dub_url),
        media_type="text/event-stream",
        headers=_STREAM_HEADERS,
    )


@router.get(
    "/{chat_id}/msgs/{msg_id}/response/dub",
    response_class=StreamingResponse,
    openapi_extra=_audio("The voiced reply"),
)
async def download_dub(
    session: SessionDep,
    infra: InfraDep,
    message: OwnedMessage,
    range_: RangeHeader = None,
    format_: DubFormat = "wav",
) -> Response:
    """The voiced reply as audio/wav, or audio/mpeg with `?format=mp3` (404 until ready)."""
    reply = await chats.reply_of(session, message)
    if reply.dub_status != ReplyStatus.READY or reply.dub_key is None:
        raise NotFound("The dub is not ready yet")
    return await _dub_response(infra.storage, reply.dub_key, format_, range_)


@router.get(
    "/{chat_id}/msgs/{msg_id}/response/dub/{index}",
    response_class=StreamingResponse,
    openapi_extra=_audio("One sentence of the voiced reply"),
)
async def download_dub_chunk(
    session: SessionDep,
    infra: InfraDep,
    message: OwnedMessage,
    index: int,
    range_: RangeHeader = None,
    format_: DubFormat = "wav",
) -> Response:
    """One sentence of the dub, available before the whole dub is ready (`?format=mp3` too)."""
    reply = await chats.reply_of(session, message)
    key = (await infra.state.get_fields(replies.dub_chunks_key(reply.id))).get(str(index))
    if key is None:
        raise NotFound("No such dub chunk")
    return await _dub_response(infra.storage, key, format_, range_)
