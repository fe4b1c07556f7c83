import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from bishop_backend.models.common import (
    created_field,
    empty_list,
    id_field,
    owner_field,
    updated_field,
)
from bishop_backend.models.text import SafeLine, SafeText


class MessageRole(StrEnum):
    USER = "user"
    AVATAR = "avatar"


class ReplyStatus(StrEnum):
    """State of an avatar's reply text, and separately of its dub. A reply the user stopped
    while it streamed is `stopped`: it keeps the text so far and is not voiced."""

    NONE = "none"
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


class ChatBase(SQLModel):
    title: str = Field(min_length=1, max_length=255)


class ChatCreate(ChatBase):
    title: SafeLine = Field(min_length=1, max_length=255)


class ChatUpdate(ChatCreate):
    pass


class Chat(ChatBase, table=True):
    id: uuid.UUID = id_field()
    avatar_id: uuid.UUID = owner_field("avatar")
    created_at: datetime = created_field()


class ChatPublic(ChatBase):
    id: uuid.UUID
    avatar_id: uuid.UUID
    created_at: datetime


class ChatSummary(ChatPublic):
    """A chat as a list of chats shows it: with its newest message, if any."""

    last_message: str | None = None  # a snippet of the newest message with text
    last_message_at: datetime | None = None


class SearchHit(SQLModel):
    """A message (or, with no `message_id`, a chat's title) that matched a search."""

    avatar_id: uuid.UUID
    avatar_name: str
    chat_id: uuid.UUID
    chat_title: str
    message_id: uuid.UUID | None
    role: MessageRole | None
    snippet: str
    created_at: datetime


class MessageCreate(SQLModel):
    message: SafeText = Field(min_length=1, max_length=8000)


class Message(SQLModel, table=True):
    # A chat's messages in order: its page of history, its newest message in the chat list.
    __table_args__ = (Index("ix_message_chat_id_created_at", "chat_id", "created_at"),)

    id: uuid.UUID = id_field()
    chat_id: uuid.UUID = owner_field("chat")
    role: str = Field(max_length=8)
    text: str = ""
    reply_to_id: uuid.UUID | None = Field(default=None, index=True)
    status: str = Field(default=ReplyStatus.READY, max_length=8)
    error: str | None = Field(default=None, max_length=2000)
    dub_status: str = Field(default=ReplyStatus.NONE, max_length=8)
    dub_key: str | None = Field(default=None, max_length=1024)
    dub_voice: str | None = Field(default=None, max_length=255)
    adapter_version_id: uuid.UUID | None = None
    passage_ids: list[str] = Field(
        default_factory=empty_list, sa_column=Column(JSON, nullable=False)
    )
    # `SourcePublic`s as JSON, best first: only passages of the reply's own avatar's materials.
    sources: list[dict[str, Any]] = Field(
        default_factory=empty_list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = created_field()
    updated_at: datetime = updated_field()


class SourcePublic(SQLModel):
    """A passage of the avatar's materials that a reply was built on."""

    material_id: uuid.UUID
    file_name: str
    text: str
    rank: int  # 1: the passage the retrieval found most relevant


class MessagePublic(SQLModel):
    id: uuid.UUID
    chat_id: uuid.UUID
    role: MessageRole
    text: str
    reply_to_id: uuid.UUID | None
    status: ReplyStatus
    error: str | None
    dub_status: ReplyStatus
    dub_voice: str | None
    adapter_version_id: uuid.UUID | None
    passage_ids: list[str]
    # A default: an idempotent resend may replay a message stored before replies had sources.
    sources: list[SourcePublic] = []
    created_at: datetime


class MessageSent(SQLModel):
    """Answer to sending a message: the stored message and where its reply will appear."""

    message: MessagePublic
    response_id: uuid.UUID
