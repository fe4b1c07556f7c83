import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from bishop_backend.models.common import (
    created_field,
    empty_list,
    id_field,
    owner_field,
    updated_field,
)


class MaterialStatus(StrEnum):
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    PROCESSED = "processed"
    FAILED = "failed"


class MaterialBase(SQLModel):
    type: str = Field(max_length=16)
    kind: str = Field(max_length=16)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=128)
    size: int
    status: str = Field(default=MaterialStatus.UPLOADED, max_length=16)
    status_detail: str | None = Field(default=None, max_length=2000)


class Material(MaterialBase, table=True):
    id: uuid.UUID = id_field()
    avatar_id: uuid.UUID = owner_field("avatar")
    storage_key: str = Field(max_length=1024)
    transcript_key: str | None = Field(default=None, max_length=1024)
    # A chat export's senders as its ingest found them, and the one chosen as the person.
    # Each {"name": ..., "messages": ...}, most messages first.
    senders: list[dict[str, Any]] = Field(
        default_factory=empty_list, sa_column=Column(JSON, nullable=False)
    )
    sender: str | None = Field(default=None, max_length=255)
    created_at: datetime = created_field()
    updated_at: datetime = updated_field()


class SenderPublic(SQLModel):
    """Someone who wrote in a chat export, with how many of its messages are theirs."""

    name: str
    messages: int


class MaterialPublic(MaterialBase):
    id: uuid.UUID
    avatar_id: uuid.UUID
    url: str
    has_transcript: bool
    created_at: datetime
    # A chat export's senders (empty for other materials) and the one whose words are the
    # avatar's, when the user chose one.
    senders: list[SenderPublic] = []
    sender: str | None = None


class MaterialReprocess(SQLModel):
    """Read a chat export again, with `sender` as the avatar: one of the material's `senders`."""

    sender: str = Field(min_length=1, max_length=255)
