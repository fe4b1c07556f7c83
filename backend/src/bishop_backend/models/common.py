"""Column helpers shared by the tables."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def id_field() -> uuid.UUID:
    return Field(default_factory=uuid.uuid4, primary_key=True)


def created_field() -> datetime:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False)


def owner_field(table: str) -> uuid.UUID:
    """Foreign key whose rows go away with their owner."""
    return Field(foreign_key=f"{table}.id", ondelete="CASCADE", index=True, nullable=False)


def updated_field() -> datetime:
    """When the row last changed: the sweeper measures how long a reply, material or run has
    been waiting from here."""
    return Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        nullable=False,
        sa_column_kwargs={"onupdate": utcnow},
    )
