import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Integer, Text
from sqlmodel import Field, SQLModel

from bishop_backend.models.common import UTCDateTime, created_field


class OutboxEvent(SQLModel, table=True):
    """An event written in the same transaction as the state change that causes it; the relay
    publishes it and stamps `sent_at`. The id's order is the order of publication."""

    __tablename__ = "outbox"

    # BIGINT on Postgres; SQLite autoincrements only a column declared INTEGER.
    id: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=BigInteger().with_variant(Integer(), "sqlite"),
    )
    topic: str = Field(max_length=64)
    key: str | None = Field(default=None, max_length=64)
    event_id: uuid.UUID
    event: str = Field(max_length=32)
    payload: str = Field(sa_type=Text)
    created_at: datetime = created_field()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
