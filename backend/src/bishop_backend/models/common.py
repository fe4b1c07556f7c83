"""Column helpers shared by the tables."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back with its timezone: SQLite stores none, so the API
    would otherwise send Postgres rows as `...+00:00` and SQLite rows as local-looking times."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def id_field() -> uuid.UUID:
    return Field(default_factory=uuid.uuid4, primary_key=True)


def created_field() -> datetime:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def owner_field(table: str) -> uuid.UUID:
    """Foreign key whose rows go away with their owner."""
    return Field(foreign_key=f"{table}.id", ondelete="CASCADE", index=True, nullable=False)


def updated_field() -> datetime:
    """When the row last changed: the sweeper measures how long a reply, material or run has
    been waiting from here."""
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        nullable=False,
        sa_column_kwargs={"onupdate": utcnow},
    )
