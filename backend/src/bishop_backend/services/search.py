"""Finding chats: an avatar's chats with their newest message, and search across a user's chats."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.models import Avatar, Chat, Message, User
from bishop_backend.models.chat import ChatSummary, SearchHit

SNIPPET = 120  # characters of a chat's newest message in the list
AROUND = 40  # characters of context before a match; a search snippet is at most SNIPPET long
FOLD = "bishop_fold"  # SQLite's lower() and LIKE fold ASCII only; this folds every script


async def chat_summaries(session: AsyncSession, avatar: Avatar) -> list[ChatSummary]:
    """The avatar's chats, the most recently active first, each with its newest message."""
    newest = (
        select(Message.created_at)
        .where(Message.chat_id == Chat.id)
        .order_by(col(Message.created_at).desc())
        .limit(1)
        .scalar_subquery()
    )
    # A reply being written has no text yet: the snippet is the newest message that has some.
    said = (
        select(func.substr(Message.text, 1, SNIPPET + 1))
        .where(Message.chat_id == Chat.id, Message.text != "")
        .order_by(col(Message.created_at).desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(Chat, newest.label("last_at"), said.label("last_text"))
        .where(Chat.avatar_id == avatar.id)
        .order_by(func.coalesce(newest, Chat.created_at).desc(), col(Chat.id))
    )
    rows = (await session.exec(query)).all()
    return [
        ChatSummary.model_validate(
            chat,
            update={"last_message": _shortened(text), "last_message_at": last_at},
        )
        for chat, last_at, text in rows
    ]


async def search(session: AsyncSession, user: User, q: str, limit: int) -> list[SearchHit]:
    """The user's chat titles and messages that contain `q`, whatever its case; titles first,
    then messages, the newest first."""
    contains = await _contains(session, q)
    scope = (
        select(Chat, Avatar)
        .join(Avatar, col(Avatar.id) == col(Chat.avatar_id))
        .where(Avatar.owner_id == user.id)
    )
    titles = (
        await session.exec(
            scope.where(contains(Chat.title)).order_by(col(Chat.created_at).desc()).limit(limit)
        )
    ).all()
    hits = [_title_hit(chat, avatar) for chat, avatar in titles]
    if len(hits) < limit:
        messages = (
            await session.exec(
                scope.add_columns(Message)
                .join(Message, col(Message.chat_id) == col(Chat.id))
                .where(contains(Message.text))
                .order_by(col(Message.created_at).desc())
                .limit(limit - len(hits))
            )
        ).all()
        hits += [_message_hit(chat, avatar, message, q) for chat, avatar, message in messages]
    return hits


Contains = Callable[[Any], ColumnElement[bool]]


async def _contains(session: AsyncSession, q: str) -> Contains:
    """The condition "this column contains `q`, case aside" on this session's database."""
    pattern = "%" + _escaped(q) + "%"
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        return lambda column: column.ilike(pattern, escape="\\")
    await _register_fold(connection)
    folded = pattern.lower()
    return lambda column: getattr(func, FOLD)(column).like(folded, escape="\\")


async def _register_fold(connection: AsyncConnection) -> None:
    """Teach this SQLite connection a `lower()` that knows Cyrillic (once per connection)."""
    info = connection.info
    if info.get(FOLD):
        return

    def register(sync: Any) -> None:
        sync.connection.dbapi_connection.create_function(FOLD, 1, _fold, deterministic=True)

    await connection.run_sync(register)
    info[FOLD] = True


def _fold(text: str | None) -> str | None:
    return text.lower() if isinstance(text, str) else text


def _escaped(q: str) -> str:
    """`q` with LIKE's wildcards taken literally."""
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _shortened(text: str | None, limit: int = SNIPPET) -> str | None:
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _title_hit(chat: Chat, avatar: Avatar) -> SearchHit:
    return SearchHit(
        avatar_id=avatar.id,
        avatar_name=avatar.name,
        chat_id=chat.id,
        chat_title=chat.title,
        message_id=None,
        role=None,
        snippet=chat.title,
        created_at=chat.created_at,
    )


def _message_hit(chat: Chat, avatar: Avatar, message: Message, q: str) -> SearchHit:
    return SearchHit(
        avatar_id=avatar.id,
        avatar_name=avatar.name,
        chat_id=chat.id,
        chat_title=chat.title,
        message_id=message.id,
        role=message.role,  # type: ignore[arg-type]
        snippet=snippet_around(message.text, q),
        created_at=message.created_at,
    )


def snippet_around(text: str, q: str, limit: int = SNIPPET) -> str:
    """A piece of `text` of at most `limit` characters that shows where `q` is in it."""
    flat = " ".join(text.split())
    at = flat.lower().find(" ".join(q.split()).lower())
    if len(flat) <= limit:
        return flat
    start = max(0, at - AROUND) if at >= 0 else 0
    piece = flat[start : start + limit - 2]
    return ("…" if start > 0 else "") + piece + ("…" if start + len(piece) < len(flat) else "")
