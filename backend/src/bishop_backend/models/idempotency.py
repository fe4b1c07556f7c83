import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from bishop_backend.models.common import created_field


class IdempotencyRecord(SQLModel, table=True):
    """The result of a request sent with an `Idempotency-Key`, kept so that a repeat of it
    returns the same result and creates nothing."""

    __tablename__ = "idempotency_key"

    user_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    # What the key was used for (route and target), so a key reused elsewhere is refused.
    scope: str = Field(max_length=255)
    # A hash of what the request asked for, where it is known before the body is stored: the
    # same key with other content is refused.
    fingerprint: str = Field(default="", max_length=64)
    status_code: int
    body: Any = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = created_field()
