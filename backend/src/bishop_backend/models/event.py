import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from bishop_backend.models.common import created_field


class ProcessedEvent(SQLModel, table=True):
    """Events whose effects are committed; written in the same transaction as those effects."""

    __tablename__ = "processed_event"

    event_id: uuid.UUID = Field(primary_key=True)
    event: str = Field(max_length=32)
    processed_at: datetime = created_field()
